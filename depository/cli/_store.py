"""Store commands: init, put, get, ls, show, log, checkpoint, vkey, prove, hold, retention,
dispose, scrub, governance. Each is a thin client of :mod:`depository.store`."""

from __future__ import annotations

import base64
import getpass
import json
import shutil
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import click

from depository.store import (
    ConfigError,
    NotFoundError,
    Store,
    StoreError,
    format_time,
    parse_time,
    read_config_file,
    utc_now,
)
from depository.store.config import default_config_dict
from depository.tlog import safejson
from depository.verifier.files import InputFileError, read_file

F = TypeVar("F", bound=Callable[..., Any])

store_option = click.option(
    "--store", "store_dir", envvar="DEPOSITORY_STORE", required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Store directory (or set DEPOSITORY_STORE).",
)
signer_option = click.option(
    "--signer-key", "signer_key", envvar="DEPOSITORY_SIGNER_KEY", default=None,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Log signer key file, when kept outside the store (or DEPOSITORY_SIGNER_KEY).",
)
json_option = click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
actor_option = click.option(
    "--actor", default=None, help="Who is acting (recorded in the log). Default: cli:$USER."
)


def _actor(actor: str | None) -> str:
    if actor:
        return actor
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli"


class _Refused(click.ClickException):
    exit_code = 1


def _fail(exc: Exception) -> click.ClickException:
    return _Refused(str(exc))


@contextmanager
def _open(store_dir: Path, *, signer_key: Path | None = None, readonly: bool = False
          ) -> Iterator[Store]:
    try:
        store = Store.open(store_dir, signer_key_file=signer_key, readonly=readonly)
    except StoreError as exc:
        raise _fail(exc) from exc
    try:
        yield store
    except StoreError as exc:
        raise _fail(exc) from exc
    except ValueError as exc:
        raise click.UsageError(str(exc)) from exc
    finally:
        store.close()


def _emit(data: Any, as_json: bool, human: Callable[[], None]) -> None:
    if as_json:
        click.echo(json.dumps(data, indent=2, sort_keys=True))
    else:
        human()


# A --metadata/--provenance @FILE is read up to this many bytes (the store then refuses
# canonical JSON over depository.store.limits.METADATA_MAX_BYTES).
_JSON_FILE_MAX = 1024 * 1024


def _json_arg(value: str | None, what: str) -> dict[str, Any]:
    if value is None:
        return {}
    text: str | bytes = value
    if value.startswith("@"):
        try:
            text = read_file(value[1:], limit=_JSON_FILE_MAX, what="JSON document")
        except InputFileError as exc:
            raise click.BadParameter(str(exc), param_hint=what) from None
    try:
        data = safejson.loads(text, max_bytes=_JSON_FILE_MAX, what="the JSON")
    except safejson.JSONLimitError as exc:
        raise click.BadParameter(f"refused: {exc}", param_hint=what) from None
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError
        raise click.BadParameter(f"not valid JSON: {exc}", param_hint=what) from None
    if not isinstance(data, dict):
        raise click.BadParameter("must be a JSON object", param_hint=what)
    return data


def _time_arg(value: str | None, what: str) -> datetime | None:
    if value is None:
        return None
    try:
        return parse_time(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint=what) from exc


@click.command()
@store_option
@click.option("--config", "config_file", type=click.Path(dir_okay=False, path_type=Path),
              help="depository.yaml to use (default: the four demo products, permissive).")
@click.option("--origin", help="Log origin (checkpoint name), e.g. example.org/depository.")
@click.option("--engine", type=click.Choice(["sqlite", "postgresql"]),
              help="Where the log and catalog live (default: the configuration's "
                   "engine.type, else sqlite in STORE/depository.db).")
@click.option("--dsn", help="PostgreSQL: libpq DSN of the service role the store runs as "
                            "(no password: use PGPASSWORD or ~/.pgpass); written to "
                            "depository.yaml as engine.dsn.")
@click.option("--admin-dsn", envvar="DEPOSITORY_PG_ADMIN_DSN",
              help="PostgreSQL: DSN of the role that will own the tables; used once, to "
                   "create them [env: DEPOSITORY_PG_ADMIN_DSN].")
@signer_option
@actor_option
def init(store_dir: Path, config_file: Path | None, origin: str | None, engine: str | None,
         dsn: str | None, admin_dsn: str | None, signer_key: Path | None,
         actor: str | None) -> None:
    """Create a store: database, object directory, log keys, frozen schemas.

    Prints the log's verifier key: give it to auditors. With --engine postgresql the log
    and catalog go to PostgreSQL (ADR 0013): the tables are created as the --admin-dsn
    role, and the store runs as the --dsn role, which may only read and insert.

    \b
    Example:
      depository init --store ./store --origin example.org/depository
      depository init --store ./store --engine postgresql \\
          --dsn 'host=db dbname=depository user=depository_service' \\
          --admin-dsn 'host=db dbname=depository user=depository_owner'
    """
    try:
        config = read_config_file(config_file) if config_file else None
        if engine is not None or dsn is not None:
            config = dict(config or default_config_dict(origin or "depository.local/log"))
            eng = dict(config.get("engine") or {})
            if engine is not None:
                eng["type"] = engine
            if dsn is not None:
                eng["dsn"] = dsn
            config["engine"] = eng
        store = Store.init(store_dir, config=config, origin=origin,
                           signer_key_file=signer_key, actor=_actor(actor),
                           admin_dsn=admin_dsn)
    except (StoreError, ConfigError) as exc:
        raise _fail(exc) from exc
    try:
        click.echo(f"created store {store_dir} (origin {store.origin})", err=True)
        click.echo(f"products: {', '.join(sorted(store.config.products))}", err=True)
        click.echo("log verifier key (give this to auditors):", err=True)
        click.echo(store.verifier_key)
    finally:
        store.close()


@click.command()
@store_option
@signer_option
@click.option("--product", required=True, help="Product id, e.g. gurukul.")
@click.option("--name", required=True, help="Artifact name, unique within the product.")
@click.option("--metadata", help="Metadata JSON object, or @FILE.")
@click.option("--provenance", help="Provenance JSON object, or @FILE.")
@click.option("--media-type", default="application/octet-stream", show_default=True)
@click.option("--retain-until", help="Retain until this date/time (at least the default).")
@click.option("--no-proof", is_flag=True, help="Do not wait for a checkpoint and proof.")
@actor_option
@json_option
@click.argument("file", type=click.Path(allow_dash=True, dir_okay=False))
def put(store_dir: Path, signer_key: Path | None, product: str, name: str,
        metadata: str | None, provenance: str | None, media_type: str,
        retain_until: str | None, no_proof: bool, actor: str | None, as_json: bool,
        file: str) -> None:
    """Store FILE (or - for stdin) once, as NAME in PRODUCT; print the receipt.

    The receipt (artifact id, log index, leaf hash, signed checkpoint and tlog-proof)
    is issued only after the write is durable.

    \b
    Example:
      depository put --store ./store --product gurukul --name lessons/l1.pdf \\
          --metadata '{"course": "algebra"}' --provenance '{"author": "t1"}' l1.pdf
    """
    meta = _json_arg(metadata, "--metadata")
    prov = _json_arg(provenance, "--provenance")
    until = _time_arg(retain_until, "--retain-until")
    with _open(store_dir, signer_key=signer_key) as store:
        try:
            stream = sys.stdin.buffer if file == "-" else open(file, "rb")  # noqa: SIM115
        except OSError as exc:
            raise click.BadParameter(f"cannot read {file}: {exc.strerror}") from exc
        with stream:
            receipt = store.put(product, name, stream, metadata=meta, provenance=prov,
                                media_type=media_type, retain_until=until,
                                actor=_actor(actor), wait_checkpoint=not no_proof)

        def human() -> None:
            state = "already stored (identical bytes)" if receipt.duplicate else "stored"
            click.echo(f"{state}: {receipt.product}/{receipt.name}")
            for k in ("artifact_id", "sha256", "size", "log_index", "created", "retain_until"):
                click.echo(f"  {k:13} {getattr(receipt, k)}")
            click.echo(f"  {'leaf_hash':13} {receipt.leaf_hash.hex()}")
            if receipt.proof:
                click.echo("tlog-proof:")
                click.echo(receipt.proof.decode(), nl=False)

        _emit(receipt.to_json(), as_json, human)


@click.command()
@store_option
@click.option("--product", required=True, help="Product id.")
@click.option("--out", "out", type=click.Path(dir_okay=False, allow_dash=True), default="-",
              show_default=True, help="Where to write the bytes.")
@click.argument("name")
def get(store_dir: Path, product: str, out: str, name: str) -> None:
    """Write an artifact's bytes (by name or artifact id) to --out.

    \b
    Example:
      depository get --store ./store --product gurukul lessons/l1.pdf --out l1.pdf
    """
    with _open(store_dir, readonly=True) as store:
        art = store.get(product, name)
        with store.open_content(art) as src:
            if out == "-":
                shutil.copyfileobj(src, sys.stdout.buffer)
            else:
                with open(out, "wb") as dst:
                    shutil.copyfileobj(src, dst)


@click.command()
@store_option
@click.option("--product", required=True, help="Product id.")
@json_option
@click.argument("name")
def show(store_dir: Path, product: str, as_json: bool, name: str) -> None:
    """Show an artifact's record: hashes, metadata, provenance, retention, holds.

    \b
    Example:
      depository show --store ./store --product gurukul lessons/l1.pdf
    """
    with _open(store_dir, readonly=True) as store:
        art = store.get(product, name)
        holds = [h.to_json() for h in store.holds_covering(art)]
        data = art.to_json() | {"holds": holds}

        def human() -> None:
            for k, v in data.items():
                if isinstance(v, dict | list):
                    v = json.dumps(v, sort_keys=True)
                click.echo(f"{k:13} {v}")

        _emit(data, as_json, human)


@click.command("ls")
@store_option
@click.option("--product", help="Only this product.")
@click.option("--prefix", help="Only names starting with this.")
@click.option("--since", help="Created at or after (RFC 3339 or YYYY-MM-DD).")
@click.option("--until", help="Created before (RFC 3339 or YYYY-MM-DD).")
@click.option("--meta", multiple=True, help="Metadata field filter KEY=VALUE (repeatable).")
@click.option("--after", type=int, help="Cursor: only artifacts after this log index.")
@click.option("--limit", type=click.IntRange(1, 100_000), default=100, show_default=True)
@json_option
def ls_cmd(store_dir: Path, product: str | None, prefix: str | None, since: str | None,
           until: str | None, meta: tuple[str, ...], after: int | None, limit: int,
           as_json: bool) -> None:
    """List artifacts in log order, with filters.

    \b
    Example:
      depository ls --store ./store --product gurukul --meta course=algebra --json
    """
    filters = {}
    for m in meta:
        if "=" not in m:
            raise click.BadParameter("expected KEY=VALUE", param_hint="--meta")
        k, v = m.split("=", 1)
        filters[k] = v
    lo = _time_arg(since, "--since")
    hi = _time_arg(until, "--until")
    with _open(store_dir, readonly=True) as store:
        arts = store.ls(product=product, prefix=prefix, meta=filters, after=after, limit=limit,
                        since=format_time(lo) if lo else None,
                        until=format_time(hi) if hi else None)
        data = {"artifacts": [a.to_json() for a in arts],
                "next_cursor": arts[-1].log_index if len(arts) == limit else None}

        def human() -> None:
            for a in arts:
                flag = " (disposed)" if a.disposed else ""
                click.echo(f"{a.log_index:>8}  {a.created[:19]}  {a.size:>12}  "
                           f"{a.product}/{a.name}{flag}")
            if data["next_cursor"] is not None:
                click.echo(f"(more: --after {data['next_cursor']})", err=True)

        _emit(data, as_json, human)


@click.command("log")
@store_option
@click.option("--start", type=click.IntRange(min=0), default=0, show_default=True)
@click.option("--end", type=click.IntRange(min=0), help="Exclusive end (default: all).")
@click.option("--raw", is_flag=True, help="Print the exact leaf bytes, one per line.")
def log_cmd(store_dir: Path, start: int, end: int | None, raw: bool) -> None:
    """Print audit-log records [START, END).

    \b
    Example:
      depository log --store ./store --start 0 --end 10 --raw
    """
    with _open(store_dir, readonly=True) as store:
        stop = store.size() if end is None else end
        for idx, leaf in store.log_entries(start, stop):
            if raw:
                sys.stdout.buffer.write(leaf + b"\n")
            else:
                rec = json.loads(leaf)
                click.echo(f"{idx:>8}  {rec['time']}  {rec['type']:<18} "
                           f"{rec['product'] or '-':<13} {rec['actor']}  "
                           f"{json.dumps(rec['body'], sort_keys=True)[:120]}")


@click.command()
@store_option
@signer_option
@click.option("--sign", is_flag=True, help="Sign a new checkpoint over the log now.")
def checkpoint(store_dir: Path, signer_key: Path | None, sign: bool) -> None:
    """Print the latest signed checkpoint (C2SP tlog-checkpoint text).

    Save it: a later `verify store --since-checkpoint` proves nothing was rewritten.

    \b
    Example:
      depository checkpoint --store ./store > saved-checkpoint.txt
    """
    if sign:
        with _open(store_dir, signer_key=signer_key) as store:
            note = store.checkpoint()
    else:
        with _open(store_dir, readonly=True) as store:
            note = store.latest_checkpoint()[1]
    sys.stdout.buffer.write(note)


@click.command()
@store_option
def vkey(store_dir: Path) -> None:
    """Print the log's verifier key.

    \b
    Example:
      depository vkey --store ./store > log.vkey
    """
    with _open(store_dir, readonly=True) as store:
        click.echo(store.verifier_key)


@click.command()
@store_option
@click.option("--index", type=click.IntRange(min=0), help="Leaf index to prove.")
@click.option("--size", type=click.IntRange(min=1), help="Checkpoint size (default latest).")
@click.option("--consistency", type=(int, int), default=None, metavar="S1 S2",
              help="Print a consistency proof between sizes S1 and S2 instead.")
@click.option("--out", type=click.Path(dir_okay=False, allow_dash=True), default="-")
def prove(store_dir: Path, index: int | None, size: int | None,
          consistency: tuple[int, int] | None, out: str) -> None:
    """Write a C2SP tlog-proof for a record, or a consistency proof between sizes.

    \b
    Examples:
      depository prove --store ./store --index 42 --out record-42.tlog-proof
      depository prove --store ./store --consistency 100 250
    """
    with _open(store_dir, readonly=True) as store:
        if consistency is not None:
            s1, s2 = consistency
            hashes = store.consistency_proof(s1, s2)
            text = "".join(base64.b64encode(h).decode() + "\n" for h in hashes).encode()
        elif index is not None:
            text = store.proof_file(index, size)
        else:
            raise click.UsageError("give --index N or --consistency S1 S2")
    if out == "-":
        sys.stdout.buffer.write(text)
    else:
        Path(out).write_bytes(text)


@click.group()
def hold() -> None:
    """Place, release and list legal holds.

    \b
    Example:
      depository hold place --store ./store --matter M-1 --reason "litigation" --product gurukul
    """


@hold.command("place")
@store_option
@signer_option
@click.option("--matter", required=True, help="Matter id.")
@click.option("--reason", required=True, help="Why the hold is placed.")
@click.option("--artifact", "artifacts", multiple=True, help="Artifact id (repeatable).")
@click.option("--product", help="Hold a product's artifacts (optionally within a time range).")
@click.option("--from", "since", help="Created at or after (with --product).")
@click.option("--to", "until", help="Created before (with --product).")
@actor_option
@json_option
def hold_place(store_dir: Path, signer_key: Path | None, matter: str, reason: str,
               artifacts: tuple[str, ...], product: str | None, since: str | None,
               until: str | None, actor: str | None, as_json: bool) -> None:
    """Place a legal hold: covered artifacts cannot be disposed until it is released.

    \b
    Example:
      depository hold place --store ./store --matter M-1 --reason "subpoena" \\
          --artifact art_abc --artifact art_def
    """
    with _open(store_dir, signer_key=signer_key) as store:
        h = store.place_hold(matter=matter, reason=reason, actor=_actor(actor),
                             artifact_ids=artifacts, product=product,
                             since=_time_arg(since, "--from"), until=_time_arg(until, "--to"))
        _emit(h.to_json(), as_json, lambda: click.echo(
            f"placed {h.id} (matter {h.matter}) at log index {h.placed_index}"))


@hold.command("release")
@store_option
@signer_option
@click.option("--reason", required=True, help="Why the hold is released.")
@actor_option
@click.argument("hold_id")
def hold_release(store_dir: Path, signer_key: Path | None, reason: str, actor: str | None,
                 hold_id: str) -> None:
    """Release a hold (the hold and its release stay in the log).

    \b
    Example:
      depository hold release --store ./store --reason "case closed" hold-17
    """
    with _open(store_dir, signer_key=signer_key) as store:
        idx = store.release_hold(hold_id, reason=reason, actor=_actor(actor))
        click.echo(f"released {hold_id} at log index {idx}")


@hold.command("list")
@store_option
@click.option("--all", "include_released", is_flag=True, help="Include released holds.")
@json_option
def hold_list(store_dir: Path, include_released: bool, as_json: bool) -> None:
    """List holds.

    \b
    Example:
      depository hold list --store ./store --all
    """
    with _open(store_dir, readonly=True) as store:
        holds = store.holds(include_released=include_released)

        def human() -> None:
            for h in holds:
                state = "released" if h.released else "active"
                click.echo(f"{h.id:<12} {state:<9} matter={h.matter} product={h.product} "
                           f"scope={json.dumps(dict(h.scope))} reason={h.reason!r}")

        _emit([h.to_json() for h in holds], as_json, human)


@click.group()
def retention() -> None:
    """Extend artifact retention (it can never be shortened).

    \b
    Example:
      depository retention extend --store ./store --product gurukul --until 2040-01-01 \\
          --reason "regulator request" lessons/l1.pdf
    """


@retention.command("extend")
@store_option
@signer_option
@click.option("--product", required=True)
@click.option("--until", required=True, help="New retain-until date/time (must be later).")
@click.option("--reason", required=True)
@actor_option
@click.argument("name")
def retention_extend(store_dir: Path, signer_key: Path | None, product: str, until: str,
                     reason: str, actor: str | None, name: str) -> None:
    """Extend the retention of artifact NAME (or id). Shortening is refused and logged.

    \b
    Example:
      depository retention extend --store ./store --product gurukul --until 2040-01-01 \\
          --reason "regulator request" lessons/l1.pdf
    """
    when = _time_arg(until, "--until")
    assert when is not None
    with _open(store_dir, signer_key=signer_key) as store:
        idx = store.extend_retention(product, name, when, actor=_actor(actor), reason=reason)
        click.echo(f"retention extended to {format_time(when)} (log index {idx})")


@click.command()
@store_option
@signer_option
@click.option("--now", "now_text", help="With --dry-run: preview what is disposable at this time.")
@click.option("--artifact", "artifacts", multiple=True, help="Only these artifact ids.")
@click.option("--dry-run", is_flag=True, help="List what would be disposed.")
@actor_option
@json_option
def dispose(store_dir: Path, signer_key: Path | None, now_text: str | None,
            artifacts: tuple[str, ...], dry_run: bool, actor: str | None,
            as_json: bool) -> None:
    """Dispose the bytes of artifacts past retention and under no hold (logged).

    The records and proofs stay; only the bytes go.

    \b
    Example:
      depository dispose --store ./store --dry-run
    """
    if now_text is not None and not dry_run:
        raise click.UsageError("--now previews disposal at another time; use it with --dry-run")
    now = _time_arg(now_text, "--now") or utc_now()
    with _open(store_dir, signer_key=signer_key, readonly=dry_run) as store:
        if dry_run:
            arts = store.disposable(now)

            def human() -> None:
                for a in arts:
                    click.echo(f"would dispose {a.id} {a.product}/{a.name} (retained until "
                               f"{a.retain_until})")

            _emit([a.to_json() for a in arts], as_json, human)
            return
        done = store.dispose(actor=_actor(actor), artifact_ids=artifacts or None)
        _emit({"disposed_log_indexes": done}, as_json,
              lambda: click.echo(f"disposed {len(done)} artifacts"))


@click.command()
@store_option
@signer_option
@json_option
def scrub(store_dir: Path, signer_key: Path | None, as_json: bool) -> None:
    """Re-hash every artifact's bytes against the log; lock the store on damage.

    \b
    Example:
      depository scrub --store ./store
    """
    with _open(store_dir, signer_key=signer_key) as store, click.progressbar(
        length=1, label="scrubbing", file=sys.stderr
    ) as bar:
        last = [0]

        def progress(done: int, total: int) -> None:
            bar.length = max(total, 1)
            bar.update(done - last[0])
            last[0] = done

        report = store.scrub(progress=None if as_json else progress)

    def human() -> None:
        click.echo(f"checked {report['checked']} of {report['artifacts']} artifacts; "
                   f"sqlite integrity: {', '.join(report['sqlite_integrity'])}")
        for p in report["problems"]:
            click.echo(f"  PROBLEM {json.dumps(p, sort_keys=True)}")

    _emit(report, as_json, human)
    if report["problems"] or report["sqlite_integrity"] != ["ok"]:
        sys.exit(1)


@click.group()
def governance() -> None:
    """Governance lock status and unlock.

    \b
    Example:
      depository governance status --store ./store
    """


@governance.command("status")
@store_option
@json_option
def governance_status(store_dir: Path, as_json: bool) -> None:
    """Show whether writes are locked, why, and the lock history.

    \b
    Example:
      depository governance status --store ./store --json
    """
    with _open(store_dir, readonly=True) as store:
        st = store.governance_status()

        def human() -> None:
            click.echo("LOCKED: " + st["reason"] if st["locked"] else "unlocked")
            for h in st["history"]:
                click.echo(f"  {h['log_index']:>8} {h['time']} {h['state']:<8} {h['actor']}: "
                           f"{h['reason']}")

        _emit(st, as_json, human)


@governance.command("unlock")
@store_option
@signer_option
@click.option("--reason", required=True, help="What was investigated and fixed.")
@actor_option
def governance_unlock(store_dir: Path, signer_key: Path | None, reason: str,
                      actor: str | None) -> None:
    """Lift a governance lock after investigating it (logged with your reason).

    \b
    Example:
      depository governance unlock --store ./store --reason "restored config; INC-42"
    """
    try:
        store = Store.open(store_dir, signer_key_file=signer_key)
    except StoreError as exc:
        raise _fail(exc) from exc
    try:
        idx = store.unlock(reason=reason, actor=_actor(actor))
    except StoreError as exc:
        raise _fail(exc) from exc
    finally:
        store.close()
    click.echo(f"unlocked (log index {idx})")


COMMANDS = [init, put, get, show, ls_cmd, log_cmd, checkpoint, vkey, prove, hold, retention,
            dispose, scrub, governance]
_ = NotFoundError


@click.group()
def token() -> None:
    """Create, revoke and list API bearer tokens.

    \b
    Example:
      depository token create --store ./store --product gurukul --role writer
    """


@token.command("create")
@store_option
@signer_option
@click.option("--role", required=True, type=click.Choice(["writer", "reader", "auditor",
                                                          "legal", "admin"]))
@click.option("--product", help="Product the token acts for (writer, reader; optional for "
              "legal).")
@click.option("--expires", help="Expiry (RFC 3339 or YYYY-MM-DD). Default: never.")
@click.option("--note", default="", help="What the token is for (recorded).")
@actor_option
@json_option
def token_create(store_dir: Path, signer_key: Path | None, role: str, product: str | None,
                 expires: str | None, note: str, actor: str | None, as_json: bool) -> None:
    """Issue a token. The secret is printed once and stored only as a hash.

    \b
    Example:
      depository token create --store ./store --product gurukul --role writer \\
          --expires 2027-06-01 --note "gurukul ingest service"
    """
    with _open(store_dir, signer_key=signer_key) as store:
        secret, tok = store.create_token(role=role, product=product, actor=_actor(actor),
                                         expires=_time_arg(expires, "--expires"), note=note)

        def human() -> None:
            click.echo(f"issued {tok.id} ({role}{' for ' + product if product else ''}); "
                       "the secret is shown only now:", err=True)
            click.echo(secret)

        _emit(tok.to_json() | {"secret": secret}, as_json, human)


@token.command("revoke")
@store_option
@signer_option
@click.option("--reason", required=True)
@actor_option
@click.argument("token_id")
def token_revoke(store_dir: Path, signer_key: Path | None, reason: str, actor: str | None,
                 token_id: str) -> None:
    """Revoke a token by id; it stops working at once.

    \b
    Example:
      depository token revoke --store ./store --reason "rotated" tok-12
    """
    with _open(store_dir, signer_key=signer_key) as store:
        idx = store.revoke_token(token_id, reason=reason, actor=_actor(actor))
        click.echo(f"revoked {token_id} (log index {idx})")


@token.command("list")
@store_option
@json_option
def token_list(store_dir: Path, as_json: bool) -> None:
    """List tokens (never their secrets).

    \b
    Example:
      depository token list --store ./store --json
    """
    with _open(store_dir, readonly=True) as store:
        toks = store.tokens()

        def human() -> None:
            for t in toks:
                state = "revoked" if t.revoked else "active"
                click.echo(f"{t.id:<10} {state:<8} {t.role:<8} {t.product or '*':<13} "
                           f"expires={t.expires or 'never'} {t.note}")

        _emit([t.to_json() for t in toks], as_json, human)


COMMANDS.append(token)
