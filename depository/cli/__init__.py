"""The ``depository`` command: a thin client of the library.

Exit codes: 0 success (or verified); 1 verification failed or the operation was refused;
2 bad usage or unreadable input.
"""

from __future__ import annotations

import click

from depository import __version__
from depository.cli._certify import certify
from depository.cli._evidence import evidence
from depository.cli._key import key
from depository.cli._loadtest import loadtest
from depository.cli._migrate import export, migrate
from depository.cli._serve import serve
from depository.cli._store import COMMANDS as STORE_COMMANDS
from depository.cli._verify import verify
from depository.cli._watch import alert, watch


@click.group(
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
    epilog="Exit codes: 0 success; 1 verification failed or operation refused; 2 bad usage.",
)
@click.version_option(__version__, prog_name="depository")
def main() -> None:
    """Depository: a write-once store whose promises are provable offline.

    \b
    Example:
      depository key generate --name example.org/depository --out log.key
    """


main.add_command(verify)
main.add_command(key)
main.add_command(evidence)
main.add_command(certify)
main.add_command(loadtest)
main.add_command(serve)
main.add_command(watch)
main.add_command(alert)
main.add_command(migrate)
main.add_command(export)
for _command in STORE_COMMANDS:
    main.add_command(_command)
