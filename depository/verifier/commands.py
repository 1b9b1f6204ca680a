"""The verifier's command verbs, shared by ``python -m depository.verifier`` and
``depository verify``.

Each verb reads its inputs (the only I/O here), calls the pure verification code, and
returns an :class:`Outcome`; the two front ends only parse arguments and print.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from depository.tlog.errors import MalformedInputError, VerificationError
from depository.verifier.files import (
    MAX_HASH_LIST_BYTES,
    MAX_KEY_FILE_BYTES,
    MAX_LEAF_BYTES,
    MAX_NOTE_BYTES,
    MAX_PROOF_FILE_BYTES,
    InputFileError,
    read_file,
)

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2

EXIT_CODES_HELP = (
    "Exit codes: 0 verified; 1 verification failed; 2 bad usage or unreadable input."
)


class UsageError(Exception):
    """Arguments or input files that cannot be used (exit code 2)."""


@dataclass
class Outcome:
    """What a verb found: a verdict, the checks that passed, and details for --json."""

    verb: str
    ok: bool
    checks: list[str] = field(default_factory=list)
    error: str | None = None
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def exit_code(self) -> int:
        return EXIT_OK if self.ok else EXIT_FAILED

    def to_json(self) -> dict[str, Any]:
        return {
            "verb": self.verb,
            "verified": self.ok,
            "checks": self.checks,
            "error": self.error,
            **self.details,
        }

    def human(self) -> str:
        lines = [f"  ok  {c}" for c in self.checks]
        if "engine" in self.details:  # which implementation replayed it (ADR 0012)
            lines.insert(0, f"engine: {self.details['engine']}")
        if self.ok:
            lines.append(f"VERIFIED ({self.verb})")
        else:
            lines.append(f"FAILED ({self.verb}): {self.error}")
        return "\n".join(lines)


def render(outcome: Outcome, *, as_json: bool) -> str:
    """Text to print for an outcome."""
    if as_json:
        return json.dumps(outcome.to_json(), indent=2, sort_keys=True)
    return outcome.human()


def usage_failure(verb: str, message: str, *, as_json: bool) -> str:
    """Text to print for a usage error (exit code 2)."""
    if as_json:
        return json.dumps({"verb": verb, "verified": False, "usage_error": message}, indent=2)
    return f"error: {message}"


def read_bytes(path: str, *, limit: int, what: str) -> bytes:
    """Read a regular file, or standard input for ``-``, of at most ``limit`` bytes (see
    :mod:`depository.verifier.files`); anything else is a usage error naming the path."""
    try:
        return read_file(path, limit=limit, what=what)
    except InputFileError as exc:
        raise UsageError(str(exc)) from None


def parse_hash(text: str, what: str) -> bytes:
    """A 32-byte hash given as 64 hex digits or standard base64."""
    text = text.strip()
    try:
        if len(text) == 64 and all(c in "0123456789abcdefABCDEF" for c in text):
            value = bytes.fromhex(text)
        else:
            value = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise UsageError(f"{what}: not hex or base64: {text[:80]!r}") from exc
    if len(value) != 32:
        raise UsageError(f"{what}: expected a 32-byte hash, got {len(value)} bytes")
    return value


def read_proof_hashes(path: str) -> list[bytes]:
    """Proof hashes from a file: one base64 or hex hash per line; blank lines ignored."""
    text = _decode_text(read_bytes(path, limit=MAX_HASH_LIST_BYTES, what="list of proof hashes"),
                        path)
    return [
        parse_hash(line, f"{path} line {n}")
        for n, line in enumerate(text.splitlines(), 1)
        if line.strip()
    ]


def read_keys(values: Sequence[str]) -> list[str]:
    """Verifier keys given inline or as ``@FILE``/a path (one key per line)."""
    keys: list[str] = []
    for value in values:
        if value.startswith("@") or _names_a_file(value):
            path = value[1:] if value.startswith("@") else value
            text = _decode_text(read_bytes(path, limit=MAX_KEY_FILE_BYTES,
                                           what="file of verifier keys"), path)
            keys.extend(line.strip() for line in text.splitlines() if line.strip())
        else:
            keys.append(value.strip())
    if not keys:
        raise UsageError("no verifier key given (use --key)")
    return keys


def _names_a_file(value: str) -> bool:
    """Whether a ``--key`` value is the path of an existing file (else it is a key)."""
    try:
        return Path(value).is_file()
    except (OSError, ValueError):  # too long for a file name, or holds a NUL
        return False


def _decode_text(data: bytes, path: str) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UsageError(f"{path}: not UTF-8 text") from exc


def _run(verb: str, body: Callable[[Outcome], None]) -> Outcome:
    outcome = Outcome(verb=verb, ok=True)
    try:
        body(outcome)
    except VerificationError as exc:
        outcome.ok = False
        outcome.error = str(exc)
        outcome.details["error_type"] = type(exc).__name__
    return outcome


def leaf_hash_from(leaf_file: str | None, leaf_hash: str | None) -> bytes:
    """The leaf hash from ``--leaf FILE`` (hashed as RFC 6962 leaf) or ``--leaf-hash``."""
    from depository.tlog.merkle import leaf_hash as _leaf_hash

    if (leaf_file is None) == (leaf_hash is None):
        raise UsageError("give exactly one of --leaf FILE or --leaf-hash HASH")
    if leaf_file is not None:
        return _leaf_hash(read_bytes(leaf_file, limit=MAX_LEAF_BYTES, what="leaf (record)"))
    assert leaf_hash is not None
    return parse_hash(leaf_hash, "--leaf-hash")


def inclusion(
    *, index: int, size: int, root: str, proof_file: str, leaf_file: str | None,
    leaf_hash: str | None,
) -> Outcome:
    """Verify an RFC 6962 inclusion proof."""
    from depository.tlog import merkle

    lh = leaf_hash_from(leaf_file, leaf_hash)
    want_root = parse_hash(root, "--root")
    proof = read_proof_hashes(proof_file)

    def body(out: Outcome) -> None:
        out.details.update(index=index, size=size, leaf_hash=lh.hex(), root=want_root.hex())
        merkle.verify_inclusion(lh, index, size, proof, want_root)
        out.checks.append(
            f"leaf {lh.hex()[:16]}… is at index {index} of the tree of size {size} "
            f"with root {want_root.hex()[:16]}… ({len(proof)} proof hashes)"
        )

    return _run("inclusion", body)


def consistency(*, size1: int, size2: int, root1: str, root2: str, proof_file: str) -> Outcome:
    """Verify an RFC 6962 consistency proof."""
    from depository.tlog import merkle

    r1 = parse_hash(root1, "--root1")
    r2 = parse_hash(root2, "--root2")
    proof = read_proof_hashes(proof_file)

    def body(out: Outcome) -> None:
        out.details.update(size1=size1, size2=size2, root1=r1.hex(), root2=r2.hex())
        merkle.verify_consistency(size1, size2, proof, r1, r2)
        out.checks.append(
            f"tree {size1} (root {r1.hex()[:16]}…) is a prefix of tree {size2} "
            f"(root {r2.hex()[:16]}…) ({len(proof)} proof hashes)"
        )

    return _run("consistency", body)


def note(*, note_file: str, keys: Sequence[str]) -> Outcome:
    """Verify a C2SP signed note (a checkpoint is shown parsed)."""
    from depository.tlog.checkpoint import parse_checkpoint
    from depository.tlog.note import verify_note

    data = read_bytes(note_file, limit=MAX_NOTE_BYTES, what="signed note")
    vkeys = read_keys(keys)

    def body(out: Outcome) -> None:
        verified = verify_note(data, vkeys)
        out.details.update(
            verified_by=list(verified.verified),
            unknown_signatures=verified.unknown,
            cosignatures=[{"witness": n, "time": t} for n, t in verified.cosignatures],
        )
        out.checks.append(f"note signed by {', '.join(verified.verified)}")
        for name, ts in verified.cosignatures:
            out.checks.append(f"cosigned by witness {name} at unix time {ts}")
        try:
            cp = parse_checkpoint(verified.text)
        except VerificationError:
            return
        out.details["checkpoint"] = {
            "origin": cp.origin, "size": cp.size, "root": cp.root_hash.hex(),
        }
        out.checks.append(f"checkpoint {cp.origin} size {cp.size} root {cp.root_hash.hex()}")

    return _run("note", body)


def proof(
    *, proof_file: str, keys: Sequence[str], leaf_file: str | None, leaf_hash: str | None,
    origin: str | None,
) -> Outcome:
    """Verify a C2SP tlog-proof@v1 file for a leaf."""
    from depository.tlog.checkpoint import verify_proof_file

    data = read_bytes(proof_file, limit=MAX_PROOF_FILE_BYTES, what="tlog-proof file")
    vkeys = read_keys(keys)
    lh = leaf_hash_from(leaf_file, leaf_hash)

    def body(out: Outcome) -> None:
        cp = verify_proof_file(data, lh, vkeys, origin=origin)
        out.details.update(
            origin=cp.origin, size=cp.size, root=cp.root_hash.hex(), leaf_hash=lh.hex()
        )
        out.checks.append(f"checkpoint signed by {cp.origin}: size {cp.size}")
        out.checks.append(f"leaf {lh.hex()[:16]}… included under root {cp.root_hash.hex()[:16]}…")

    return _run("proof", body)


def stderr_progress(every: int = 100_000) -> Callable[[int, int], None]:
    """A progress callback for big stores: a line on stderr every ``every`` records."""
    import sys

    state = {"next": every}

    def report(done: int, total: int) -> None:
        if total < every:
            return
        if done >= state["next"] or done == total:
            print(f"verify store: {done}/{total} records replayed", file=sys.stderr, flush=True)
            state["next"] = (done // every + 1) * every

    return report


def store(
    *, path: str, keys: Sequence[str], since_checkpoint_file: str | None = None, jobs: int = 1,
    check_blobs: bool = True, progress: Callable[[int, int], None] | None = None,
    save_checkpoint: str | None = None, anchors: Sequence[bytes] | None = None,
    blob_hasher: Callable[[str], str | None] | None = None,
    blob_exists: Callable[[str], bool] | None = None,
) -> Outcome:
    """Replay a whole store directory offline (see :mod:`depository.verifier.store`)."""
    from depository.tlog.note import parse_verifier_key
    from depository.verifier.store import DB_NAME, store_result

    if not keys:
        raise UsageError(
            "pass the verifier key you trust with --key (the key string, or a file holding "
            "it, e.g. the log.vkey you saved when the store was created); the key inside the "
            "store directory is never trusted automatically, because whoever can edit the "
            "store can replace it"
        )
    root = Path(path)
    if not root.is_dir():
        raise UsageError(f"{path}: not a directory (give the store directory)")
    db = root / DB_NAME
    if not db.is_file():
        if db.is_symlink() or db.exists():  # a FIFO, a device, a dangling link
            raise UsageError(f"{db}: not a regular file; a store's database is one, so this "
                             "is not a store to verify (or it was tampered with)")
        if (root / "depository.yaml").is_file():  # e.g. a store on PostgreSQL
            raise UsageError(
                f"{path}: no {DB_NAME} here; if this store keeps its log in PostgreSQL, "
                "this verifier reads a SQLite snapshot of it: make one with `depository "
                "export DIR COPY` and verify COPY (or run `depository verify store DIR`)")
        raise UsageError(f"{path}: no store here ({DB_NAME} is missing)")
    try:
        with open(db, "rb"):
            pass
    except OSError as exc:
        raise UsageError(f"cannot read {db}: {exc.strerror or exc}") from exc
    vkeys = read_keys(keys)
    for k in vkeys:
        try:
            parse_verifier_key(k)
        except MalformedInputError as exc:
            raise UsageError(f"--key: {exc}") from exc
    since = (read_bytes(since_checkpoint_file, limit=MAX_NOTE_BYTES, what="signed checkpoint")
             if since_checkpoint_file is not None else None)
    if jobs < 1:
        raise UsageError(f"--jobs must be at least 1, got {jobs}")

    def body(out: Outcome) -> None:
        res = store_result(root, vkeys, since_checkpoint=since, jobs=jobs, progress=progress,
                           check_blobs=check_blobs, anchors=anchors, blob_hasher=blob_hasher,
                           blob_exists=blob_exists)
        out.ok = res.ok
        out.checks.extend(res.checks)
        out.details.update(
            engine=res.engine, path=str(root), size=res.size, checkpoints=res.checkpoints,
            artifacts=res.artifacts, disposed=res.disposed, blobs_checked=res.blobs_checked,
            origin=res.origin, verifier_key=res.verifier_key,
            latest_checkpoint_size=res.latest_checkpoint_size,
            latest_checkpoint=(res.latest_checkpoint.decode("utf-8", "replace")
                               if res.latest_checkpoint is not None else None),
            findings=[f.to_json() for f in res.findings],
            findings_total=res.findings_total,
        )
        if not res.ok:
            shown = res.findings[:50]
            lines = [f"  FAIL [{f.check}] {f.message}" for f in shown]
            if res.findings_total > len(shown):
                lines.append(f"  ... and {res.findings_total - len(shown)} more (see --json)")
            out.error = f"{res.findings_total} problem(s) found:\n" + "\n".join(lines)
            return
        if save_checkpoint is not None and res.latest_checkpoint is not None:
            try:
                Path(save_checkpoint).write_bytes(res.latest_checkpoint)
            except OSError as exc:
                raise UsageError(
                    f"cannot write {save_checkpoint}: {exc.strerror or exc}"
                ) from exc
            out.checks.append(
                f"saved the latest checkpoint (size {res.latest_checkpoint_size}) to "
                f"{save_checkpoint}: pass it as --since-checkpoint next time"
            )

    return _run("store", body)


def read_anchor_dir(path: str) -> list[bytes]:
    """Anchored checkpoints from a local directory (every regular file below it)."""
    p = Path(path)
    what = "anchored checkpoint"
    if p.is_file():
        return [read_bytes(path, limit=MAX_NOTE_BYTES, what=what)]
    if not p.is_dir():
        raise UsageError(f"--anchors {path}: not a directory or file of anchored checkpoints")
    return [read_bytes(str(f), limit=MAX_NOTE_BYTES, what=what)
            for f in sorted(p.rglob("*")) if f.is_file()]


def check_int(value: int, name: str) -> int:
    """Reject negative numbers up front (a usage error, not a verification failure)."""
    if value < 0:
        raise UsageError(f"{name} must be non-negative, got {value}")
    return value


__all__ = [
    "EXIT_CODES_HELP",
    "EXIT_FAILED",
    "EXIT_OK",
    "EXIT_USAGE",
    "MalformedInputError",
    "Outcome",
    "UsageError",
]
