"""``depository migrate`` and ``depository export``: thin clients of
:mod:`depository.store.migrate`."""

from __future__ import annotations

import json
import time
from pathlib import Path

import click

from depository.store import StoreError
from depository.store.migrate import (
    ENGINES,
    MigrationReport,
    Progress,
    SourceUnreadableError,
)
from depository.store.migrate import export as export_store
from depository.store.migrate import migrate as migrate_store
from depository.verifier import commands as cmd

_EXIT = ("Exit codes: 0 copied and verified; 1 refused (destination not empty, source "
         "being written, an interrupted run's staging directory, a source that does not "
         "verify: nothing is committed); 2 bad usage, or no readable store at SOURCE.")


class _Refused(click.ClickException):
    exit_code = 1


class _Unreadable(click.ClickException):
    exit_code = 2


def _fail(exc: StoreError) -> click.ClickException:
    return _Unreadable(str(exc)) if isinstance(exc, SourceUnreadableError) else _Refused(str(exc))


def _progress(quiet: bool) -> Progress:
    """A line on stderr when a stage ends, and every two seconds within a long one."""
    last = {"t": time.monotonic()}

    def tick(stage: str, done: int, total: int) -> None:
        now = time.monotonic()
        if quiet or done == 0 or (done < total and now - last["t"] < 2.0):
            return
        click.echo(f"{stage}: {done}/{total}", err=True)
        last["t"] = now

    return tick


def _keys(values: tuple[str, ...]) -> list[str]:
    try:
        return cmd.read_keys(values) if values else []
    except cmd.UsageError as exc:
        raise click.BadParameter(str(exc), param_hint="--key") from None


def _emit(report: MigrationReport, as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(report.to_json(), indent=2, sort_keys=True))
        return
    what = "exported" if report.kind == "export" else "migrated"
    click.echo(f"{what} {report.source} ({report.source_engine}) -> {report.destination} "
               f"({report.destination_engine})")
    click.echo(f"log: {report.size} records; latest signed checkpoint: size "
               f"{report.checkpoint_size}, root {report.checkpoint_root}")
    rows = ", ".join(f"{t} {d['rows']}" for t, d in report.tables.items() if d["rows"])
    click.echo(f"rows copied and read back identical: {rows}; blob files: {report.blobs}")
    click.echo(f"VERIFIED: the copy replays with the offline verifier against {report.trust}")
    if report.manifest:
        click.echo(f"manifest: {report.manifest}"
                   + (" (signed with the log key)" if report.manifest_signed else
                      " (unsigned: no signer key was available)"))
    if report.source_size_after is not None and report.source_size_after != report.size:
        click.echo(f"note: the source has {report.source_size_after} records now; this copy "
                   f"is the snapshot of its first {report.size}", err=True)


@click.command("migrate", epilog=_EXIT)
@click.argument("source", type=click.Path(file_okay=False, path_type=Path))
@click.argument("destination", type=click.Path(file_okay=False, path_type=Path))
@click.option("--to", "engine", type=click.Choice(ENGINES), default="sqlite",
              show_default=True, help="Storage engine of the new store.")
@click.option("--dsn", help="With --to postgresql: the libpq connection string of the role "
              "the new store runs as (written to its depository.yaml without a password; "
              "passwords come from PGPASSWORD or ~/.pgpass).")
@click.option("--admin-dsn", help="With --to postgresql: the role that creates and owns "
              "the tables (used only here; default: --dsn, which PostgreSQL refuses for a "
              "store role that must own nothing).")
@click.option("--key", "keys", multiple=True,
              help="Verifier key to replay the copy against, or a file of keys (repeatable; "
              "default: the source's own key in record 0, which checks integrity only).")
@click.option("--signer-key", "signer_key", envvar="DEPOSITORY_SIGNER_KEY",
              type=click.Path(dir_okay=False, path_type=Path),
              help="Log signer key to sign the migration manifest (default: the source's "
              "keys/log.key if present).")
@click.option("--batch", "batch_rows", type=click.IntRange(min=1), default=5000,
              show_default=True, help="Rows per batch.")
@click.option("--no-blobs", is_flag=True,
              help="Do not re-hash live artifacts' bytes in the verifying replay.")
@click.option("--quiet", is_flag=True, help="No progress lines on stderr.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def migrate(source: Path, destination: Path, engine: str, dsn: str | None,
            admin_dsn: str | None, keys: tuple[str, ...], signer_key: Path | None,
            batch_rows: int, no_blobs: bool, quiet: bool, as_json: bool) -> None:
    """Copy a stopped store into a new, empty store on another engine, verified.

    Reads SOURCE in one read-only snapshot (its writer lock held: stop `serve` first),
    copies the log, tree, checkpoints (as signed, by the original key) and every derived
    table in log order with the blob files, configuration and keys, reads every table
    back, replays the copy with the offline verifier, and only then makes DESTINATION
    appear. All or nothing: an interrupted run leaves the source unchanged and no store
    at DESTINATION. Nothing is written into the log; a manifest in
    DESTINATION/migrations/ records the migration.

    \b
    Example:
      depository migrate ./store ./store-copy --key log.vkey
      depository migrate ./store ./store-pg --to postgresql \\
          --dsn "host=db dbname=depository user=depository_service" \\
          --admin-dsn "host=db dbname=depository user=depository_owner" --key log.vkey
    """
    if (engine == "postgresql") != (dsn is not None) or (admin_dsn and engine != "postgresql"):
        raise click.UsageError("--dsn (and --admin-dsn) go with --to postgresql, and --dsn "
                               "is required with it")
    trusted = _keys(keys)
    signer = None
    key_path = signer_key or (source / "keys" / "log.key")
    if key_path.is_file():
        try:
            signer = key_path.read_text().strip()
        except OSError as exc:
            raise click.BadParameter(f"cannot read {key_path}: {exc.strerror}",
                                     param_hint="--signer-key") from None
    elif signer_key is not None:
        raise click.BadParameter(f"{signer_key}: no such file", param_hint="--signer-key")
    try:
        report = migrate_store(source, destination, to_engine=engine, dsn=dsn,
                               admin_dsn=admin_dsn,
                               trusted_keys=trusted, signer_key=signer, batch_rows=batch_rows,
                               check_blobs=not no_blobs, progress=_progress(quiet or as_json))
    except StoreError as exc:
        raise _fail(exc) from exc
    _emit(report, as_json)


@click.command("export", epilog=_EXIT)
@click.argument("source", type=click.Path(file_okay=False, path_type=Path))
@click.argument("destination", type=click.Path(file_okay=False, path_type=Path))
@click.option("--key", "keys", multiple=True,
              help="Verifier key to replay the copy against, or a file of keys (repeatable; "
              "default: the source's own key in record 0, which checks integrity only).")
@click.option("--no-blobs", is_flag=True,
              help="Copy no blob files (the auditor then verifies with --no-blobs, or reads "
              "the bytes from S3 through `depository verify store`).")
@click.option("--batch", "batch_rows", type=click.IntRange(min=1), default=5000,
              show_default=True, help="Rows per batch.")
@click.option("--quiet", is_flag=True, help="No progress lines on stderr.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def export(source: Path, destination: Path, keys: tuple[str, ...], no_blobs: bool,
           batch_rows: int, quiet: bool, as_json: bool) -> None:
    """Snapshot a store (live or not, any engine) as a SQLite store directory for auditors.

    The copy is one consistent read-only snapshot, proven identical table by table and
    replayed before DESTINATION appears; it holds the public keys only. Hand it to an
    auditor, who runs `python -m depository.verifier store DESTINATION --key log.vkey`.

    \b
    Example:
      depository export ./store ./audit-copy --key log.vkey
    """
    try:
        report = export_store(source, destination, trusted_keys=_keys(keys),
                              batch_rows=batch_rows, copy_blobs=not no_blobs,
                              check_blobs=not no_blobs, progress=_progress(quiet or as_json))
    except StoreError as exc:
        raise _fail(exc) from exc
    _emit(report, as_json)

