"""Depository: a compliance evidence toolkit.

Subpackages: ``tlog`` (the log formats: Merkle, notes, checkpoints, records),
``verifier`` (offline, dependency-light verification), ``store`` (the WORM store), and the
CLI in ``depository.cli``. Signing lives in ``depository.signing``. Who may import whom:
``docs/adr/0006-layers.md``.
"""

__version__ = "0.1.0"
