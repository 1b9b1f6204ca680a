"""``depository verify ...``: the same verbs as ``python -m depository.verifier``."""

from __future__ import annotations

import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import click

from depository.verifier import commands as cmd

if TYPE_CHECKING:
    from depository.store.config import Config

_EXIT = cmd.EXIT_CODES_HELP


def _finish(verb: str, as_json: bool, run: Callable[[], cmd.Outcome]) -> None:
    try:
        outcome = run()
    except cmd.UsageError as exc:
        click.echo(cmd.usage_failure(verb, str(exc), as_json=as_json), err=True)
        sys.exit(cmd.EXIT_USAGE)
    click.echo(cmd.render(outcome, as_json=as_json))
    sys.exit(outcome.exit_code)


_json_opt = click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
_leaf_opts = [
    click.option("--leaf", "leaf_file", type=str, help="File with the leaf's exact bytes."),
    click.option("--leaf-hash", type=str, help="The leaf hash (hex or base64) instead of --leaf."),
]
_key_opt = click.option(
    "--key", "keys", multiple=True, required=True,
    help="Trusted verifier key, or a file of keys (repeatable).",
)


def _leaf(f: Callable[..., None]) -> Callable[..., None]:
    for opt in reversed(_leaf_opts):
        f = opt(f)
    return f


@click.group(epilog=_EXIT)
def verify() -> None:
    """Verify proofs, signed notes and checkpoints offline.

    \b
    Example:
      depository verify note checkpoint.txt --key log.vkey
      depository verify store ./store --key log.vkey
    """


@verify.command(epilog=_EXIT)
@click.option("--index", type=click.IntRange(min=0), required=True, help="0-based leaf index.")
@click.option("--size", type=click.IntRange(min=0), required=True, help="Tree size.")
@click.option("--root", required=True, help="Tree root (hex or base64).")
@click.option("--proof", "proof_file", required=True, help="File of proof hashes, one per line.")
@_leaf
@_json_opt
def inclusion(
    index: int, size: int, root: str, proof_file: str, leaf_file: str | None,
    leaf_hash: str | None, as_json: bool,
) -> None:
    """Verify an RFC 6962 inclusion proof.

    \b
    Example:
      depository verify inclusion --index 3 --size 8 --root HASH --leaf leaf.json \\
          --proof proof.txt
    """
    _finish("inclusion", as_json, lambda: cmd.inclusion(
        index=index, size=size, root=root, proof_file=proof_file, leaf_file=leaf_file,
        leaf_hash=leaf_hash,
    ))


@verify.command(epilog=_EXIT)
@click.option("--size1", type=click.IntRange(min=0), required=True, help="Smaller tree size.")
@click.option("--size2", type=click.IntRange(min=0), required=True, help="Larger tree size.")
@click.option("--root1", required=True, help="Root of the smaller tree.")
@click.option("--root2", required=True, help="Root of the larger tree.")
@click.option("--proof", "proof_file", required=True, help="File of proof hashes, one per line.")
@_json_opt
def consistency(
    size1: int, size2: int, root1: str, root2: str, proof_file: str, as_json: bool
) -> None:
    """Verify an RFC 6962 consistency proof between two tree sizes.

    \b
    Example:
      depository verify consistency --size1 4 --size2 8 --root1 H1 --root2 H2 \\
          --proof proof.txt
    """
    _finish("consistency", as_json, lambda: cmd.consistency(
        size1=size1, size2=size2, root1=root1, root2=root2, proof_file=proof_file,
    ))


@verify.command(epilog=_EXIT)
@click.argument("note_file", metavar="FILE")
@_key_opt
@_json_opt
def note(note_file: str, keys: tuple[str, ...], as_json: bool) -> None:
    """Verify a C2SP signed note, such as a checkpoint.

    \b
    Example:
      depository verify note checkpoint.txt --key log.vkey
    """
    _finish("note", as_json, lambda: cmd.note(note_file=note_file, keys=keys))


@verify.command(epilog=_EXIT)
@click.argument("proof_file", metavar="FILE")
@_key_opt
@_leaf
@click.option("--origin", help="Require this checkpoint origin.")
@_json_opt
def proof(
    proof_file: str, keys: tuple[str, ...], leaf_file: str | None, leaf_hash: str | None,
    origin: str | None, as_json: bool,
) -> None:
    """Verify a C2SP tlog-proof@v1 file for a leaf.

    \b
    Example:
      depository verify proof leaf-7.tlog-proof --leaf leaf-7.json --key log.vkey
    """
    _finish("proof", as_json, lambda: cmd.proof(
        proof_file=proof_file, keys=keys, leaf_file=leaf_file, leaf_hash=leaf_hash,
        origin=origin,
    ))


@verify.command(epilog=_EXIT)
@click.argument("store_dir", metavar="DIR")
@click.option(
    "--key", "keys", multiple=True,
    help="The verifier key you trust, or a file of keys (repeatable; required: the store's "
    "own key file is never trusted).",
)
@click.option("--since-checkpoint", "since_checkpoint", metavar="FILE",
              help="A signed checkpoint saved earlier; the store must extend it.")
@click.option("--jobs", type=click.IntRange(min=1), default=1, show_default=True,
              help="Worker processes for hashing.")
@click.option("--no-blobs", is_flag=True, help="Skip re-hashing artifact bytes.")
@click.option("--save-checkpoint", metavar="FILE",
              help="If verified, write the latest checkpoint here for next time.")
@click.option("--anchors", "anchor_urls", multiple=True, metavar="URL",
              help="Checkpoints anchored in WORM storage: s3://bucket/prefix or a directory "
              "(repeatable). Each must be consistent with the store.")
@_json_opt
def store(
    store_dir: str, keys: tuple[str, ...], since_checkpoint: str | None, jobs: int,
    no_blobs: bool, save_checkpoint: str | None, anchor_urls: tuple[str, ...],
    as_json: bool,
) -> None:
    """Replay a whole store: records, tree, checkpoints, derived tables and blobs.

    Every check is re-derived from the signed log with the key you trust; a finding
    names the record, artifact or table and what it means.

    \b
    Example:
      depository verify store ./store --key log.vkey --since-checkpoint saved.txt
    """
    def run() -> cmd.Outcome:
        anchors, hasher, exists = _store_io(store_dir, anchor_urls, check_blobs=not no_blobs)
        with _snapshot(store_dir, as_json, check_blobs=not no_blobs) as (path, h, e):
            return cmd.store(
                path=path, keys=keys, since_checkpoint_file=since_checkpoint, jobs=jobs,
                check_blobs=not no_blobs, progress=None if as_json else cmd.stderr_progress(),
                save_checkpoint=save_checkpoint, anchors=anchors, blob_hasher=hasher or h,
                blob_exists=exists or e,
            )

    _finish("store", as_json, run)


@contextmanager
def _snapshot(store_dir: str, as_json: bool, *, check_blobs: bool) -> Iterator[
        tuple[str, Callable[[str], str | None] | None, Callable[[str], bool] | None]]:
    """The directory the verifier replays: the store itself (SQLite), or for a PostgreSQL
    store a SQLite export of one read-only snapshot of it in a temporary directory (the
    pure verifier reads SQLite files only), with its blob files read in place."""
    from depository.store.migrate import (
        MigrationError,
        SourceUnreadableError,
        export,
        store_engine,
    )

    try:
        engine = store_engine(Path(store_dir))
    except MigrationError as exc:
        raise cmd.UsageError(str(exc)) from None
    if engine == "sqlite":
        yield store_dir, None, None
        return
    with tempfile.TemporaryDirectory(prefix="depository-verify-") as tmp:
        snap = Path(tmp) / "snapshot"
        try:
            report = export(Path(store_dir), snap, copy_blobs=False, replay=False)
        except SourceUnreadableError as exc:
            raise cmd.UsageError(str(exc)) from None
        except MigrationError as exc:
            # e.g. a WORM trigger disabled in PostgreSQL: a verification failure.
            click.echo(cmd.render(cmd.Outcome("store", False, error=str(exc)),
                                  as_json=as_json))
            sys.exit(cmd.EXIT_FAILED)
        if not as_json:
            click.echo(f"PostgreSQL store: replaying one read-only snapshot of it "
                       f"({report.size} records), exported to SQLite", err=True)
        hasher: Callable[[str], str | None] | None = None
        exists: Callable[[str], bool] | None = None
        if check_blobs:
            from depository.store import open_backend

            cfg = _read_config(Path(store_dir) / "depository.yaml")
            blobs = open_backend(Path(store_dir) / "objects", cfg.backend, readonly=True)
            hasher, exists = blobs.hash, blobs.exists
        yield str(snap), hasher, exists


def _store_io(
    store_dir: str, anchor_urls: tuple[str, ...], *, check_blobs: bool,
) -> tuple[list[bytes] | None, Callable[[str], str | None] | None,
           Callable[[str], bool] | None]:
    """The I/O the pure verifier cannot do itself: fetch anchors, read S3 blobs."""
    from depository.store import StoreError, fetch_anchors, open_backend

    try:
        anchors = [a for url in anchor_urls for a in fetch_anchors(url)] if anchor_urls else None
        cfg_path = Path(store_dir) / "depository.yaml"
        if not check_blobs or not cfg_path.is_file():
            return anchors, None, None
        cfg = _read_config(cfg_path)
        if cfg.backend.type != "s3":
            return anchors, None, None
        blobs = open_backend(Path(store_dir) / "objects", cfg.backend, readonly=True)
        return anchors, blobs.hash, blobs.exists
    except StoreError as exc:
        raise cmd.UsageError(str(exc)) from exc


# The store's depository.yaml is read here only to find an S3 backend; it is a file in
# the directory under audit, so it is read like any other: regular, bounded, shallow.
_CONFIG_MAX_BYTES = 64 * 1024
_CONFIG_MAX_DEPTH = 32


def _read_config(path: Path) -> Config:
    import yaml

    from depository.store.config import parse_config
    from depository.tlog.safejson import text_depth
    from depository.verifier.files import InputFileError, read_file

    try:
        text = read_file(str(path), limit=_CONFIG_MAX_BYTES, what="store configuration")
    except InputFileError as exc:
        raise cmd.UsageError(str(exc)) from None
    if text_depth(text, stop_above=_CONFIG_MAX_DEPTH) > _CONFIG_MAX_DEPTH:
        raise cmd.UsageError(f"{path}: nested more than {_CONFIG_MAX_DEPTH} deep; no store "
                             "configuration is, so it is refused")
    try:
        data = yaml.safe_load(text)
    except (yaml.YAMLError, ValueError) as exc:
        raise cmd.UsageError(f"{path}: not valid YAML: {exc}") from None
    return parse_config(data, source=str(path))


@verify.command(epilog=_EXIT)
@click.argument("package_path", metavar="PACKAGE")
@_key_opt
@click.option("--evidence-key", "evidence_keys", multiple=True,
              help="Pin the evidence key (key string or file; repeatable). Default: the key "
              "the log-signed export record names.")
@click.option("--tsa-cert", "tsa_certs", multiple=True,
              help="Trusted RFC 3161 TSA certificate, PEM or DER file (repeatable).")
@_json_opt
def package(package_path: str, keys: tuple[str, ...], evidence_keys: tuple[str, ...],
            tsa_certs: tuple[str, ...], as_json: bool) -> None:
    """Verify an evidence package (a zip or a bag directory) offline.

    Every file is re-hashed against both BagIt manifests, every record proven under the
    package's checkpoint, every artifact checked against its record, and the custody log
    and the tag-manifest signature verified; each failure names its file or record.

    \b
    Example:
      depository verify package case.zip --key log.vkey --evidence-key evidence.vkey
    """
    from depository.verifier.package import package_outcome

    _finish("package", as_json, lambda: package_outcome(
        package_path, keys, evidence_keys, tsa_certs))
