"""``depository key ...``: signing keys for logs and witnesses."""

from __future__ import annotations

import os
from pathlib import Path

import click

from depository.signing import generate_key


@click.group()
def key() -> None:
    """Create signing keys.

    \b
    Example:
      depository key generate --name example.org/depository --out log.key
    """


@key.command()
@click.option("--name", required=True, help="Key name; for a log key, the checkpoint origin.")
@click.option(
    "--out", "out", type=click.Path(dir_okay=False, path_type=Path), default=None,
    help="Signer key file to write (mode 0600). Default: NAME-derived file in the current "
    "directory.",
)
@click.option("--force", is_flag=True, help="Overwrite an existing key file.")
def generate(name: str, out: Path | None, force: bool) -> None:
    """Write a new Ed25519 signer key file and print its verifier key.

    The verifier key is what auditors trust; keep the signer key secret.

    \b
    Example:
      depository key generate --name example.org/depository --out log.key
    """
    try:
        signer, verifier = generate_key(name)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--name") from exc
    if out is None:
        out = Path(name.replace("/", "_") + ".key")
    flags = os.O_WRONLY | os.O_CREAT | (os.O_TRUNC if force else os.O_EXCL)
    try:
        fd = os.open(out, flags, 0o600)
    except FileExistsError:
        raise click.ClickException(f"{out} exists; pass --force to overwrite it") from None
    except OSError as exc:
        raise click.ClickException(f"cannot write {out}: {exc.strerror}") from exc
    with os.fdopen(fd, "w") as f:
        f.write(signer + "\n")
        f.flush()
        os.fsync(f.fileno())
    os.chmod(out, 0o600)
    click.echo(f"signer key written to {out} (mode 0600); verifier key:", err=True)
    click.echo(verifier)
