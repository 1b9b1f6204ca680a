"""``python -m depository``: the same as the ``depository`` command."""

from depository.cli import main

main()
