"""Depository: a compliance evidence toolkit.

Subpackages: ``verifier`` (offline, dependency-light verification), ``store`` (the WORM
store), and the CLI in ``depository.cli``. Signing lives in ``depository.signing``.
"""

__version__ = "0.1.0"
