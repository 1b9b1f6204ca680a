"""Issue 14, finding 5: every check that only restated a claim is now executed against the
store and the running service (in process). Each test here breaks the property one check
checks — a patched store or service where the property does not hold — and shows that
check FAIL. (That each passes on an honest store is shown by the full certification run in
test_certification.py.)"""

from __future__ import annotations

import shutil
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from _sigstore_fixture import make_store

from depository.certification import checks
from depository.certification._framework import CheckContext, CheckResult, copy_store, run_check
from depository.service import create_app
from depository.signing import generate_key, sign_note
from depository.store import RetentionError, Store
from depository.tlog.checkpoint import Checkpoint, format_checkpoint, parse_checkpoint
from depository.tlog.errors import VerificationError
from depository.tlog.note import parse_note

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")
Scope = dict[str, Any]


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_store(tmp_path_factory.mktemp("checks") / "store")


def _ctx(tmp: Path, store: Path, factory: Callable[[Store], Any] | None = create_app
         ) -> CheckContext:
    live = tmp / "live"
    shutil.copytree(store, live)
    with Store.open(live, readonly=True) as s:
        size, note = s.latest_checkpoint()
        origin = s.origin
    snapshot = tmp / "snapshot"
    copy_store(live, snapshot, from_live=True)
    (tmp / "scratch").mkdir()
    (tmp / "evidence").mkdir()
    return CheckContext(
        store_dir=live, snapshot=snapshot, scratch=tmp / "scratch",
        evidence_dir=tmp / "evidence",
        verifier_key=(live / "keys" / "log.vkey").read_text().strip(), checkpoint_note=note,
        checkpoint_size=size, checkpoint_root=parse_checkpoint(parse_note(note)[0]).root_hash,
        origin=origin, service_factory=factory)


def _run(ctx: CheckContext, check_id: str) -> CheckResult:
    spec = next(c for c in checks.CHECKS if c.id == check_id)
    return run_check(ctx, spec.id, spec.title, spec.target, spec.fn)


def _failed(res: CheckResult, action: str) -> str:
    assert res.status == "fail", (res.status, res.summary)
    bad = [s for s in res.steps if not s.ok]
    assert any(action in s.action for s in bad), [s.action for s in bad]
    return "; ".join(s.observed for s in bad)


def _service_that(answers: Callable[[Scope], bool], status: int) -> Callable[[Store], Any]:
    """The real service, except that requests ``answers`` picks get ``status``: a service
    that accepts what it must refuse."""
    def factory(s: Store) -> Any:
        app = create_app(s)

        async def patched(scope: Scope, receive: Any, send: Any) -> None:
            if scope["type"] == "http" and answers(scope):
                await send({"type": "http.response.start", "status": status,
                            "headers": [(b"content-type", b"application/json")]})
                await send({"type": "http.response.body",
                            "body": b'{"entries": [], "items": []}'})
                return
            await app(scope, receive, send)

        return patched
    return factory


def _header(scope: Scope, name: bytes) -> bool:
    return any(k.lower() == name for k, _ in scope.get("headers", []))


def test_store_state_fails_on_a_checkpoint_not_signed_by_the_log(
        tmp_path: Path, store: Path) -> None:
    ctx = _ctx(tmp_path, store)
    conn = sqlite3.connect(ctx.store_dir / "depository.db", isolation_level=None)
    triggers = [r[0] for r in conn.execute("SELECT sql FROM sqlite_master WHERE type='trigger'")]
    for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type='trigger'").fetchall():
        conn.execute(f'DROP TRIGGER "{name}"')
    size, root = conn.execute("SELECT size, root FROM checkpoint ORDER BY size DESC LIMIT 1"
                              ).fetchone()
    forged = sign_note(format_checkpoint(Checkpoint(ctx.origin, size, bytes(root))),
                       generate_key(ctx.origin)[0])
    conn.execute("UPDATE checkpoint SET note = ? WHERE size = ?", (forged, size))
    for sql in triggers:
        conn.execute(sql)
    conn.close()
    _failed(_run(ctx, "store-state"), "latest checkpoint verifies with the trusted log key")


def test_write_once_fails_when_the_service_accepts_a_delete(tmp_path: Path,
                                                            store: Path) -> None:
    ctx = _ctx(tmp_path, store, _service_that(lambda sc: sc["method"] == "DELETE", 204))
    seen = _failed(_run(ctx, "write-once"), "DELETE/PATCH/POST/PUT attempts")
    assert "DELETE" in seen and "204" in seen


def test_audit_retention_fails_when_an_operation_rewrites_a_log_record(
        tmp_path: Path, store: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    original = Store.revoke_token

    def revoke_and_rewrite(self: Store, *a: Any, **k: Any) -> int:
        seq = original(self, *a, **k)
        conn = sqlite3.connect(self.path / "depository.db", isolation_level=None)
        trig = [r[0] for r in conn.execute("SELECT sql FROM sqlite_master WHERE type='trigger'")]
        for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type='trigger'"
                                    ).fetchall():
            conn.execute(f'DROP TRIGGER "{name}"')
        conn.execute("UPDATE log SET leaf = CAST(replace(CAST(leaf AS TEXT), 'team-', "
                     "'mallory') AS BLOB) WHERE idx = 1")
        for sql in trig:
            conn.execute(sql)
        conn.close()
        return seq

    monkeypatch.setattr(Store, "revoke_token", revoke_and_rewrite)
    seen = _failed(_run(_ctx(tmp_path, store), "audit-retention"), "earlier log records")
    assert "[1]" in seen


def test_legal_hold_fails_when_disposal_is_refused_for_any_reason(
        tmp_path: Path, store: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A disposal that refuses everything with a generic message mentioning holds."""
    def never(self: Store, *a: Any, **k: Any) -> list[int]:
        raise RetentionError("cannot dispose: not expired, under a legal hold, already "
                             "disposed, or unknown")

    monkeypatch.setattr(Store, "dispose", never)
    _failed(_run(_ctx(tmp_path, store), "legal-hold"), "unheld control")


def test_no_bulk_read_fails_when_the_log_pages_are_unbounded(tmp_path: Path,
                                                             store: Path) -> None:
    ctx = _ctx(tmp_path, store, _service_that(lambda sc: sc["path"] == "/v1/log/entries", 200))
    _failed(_run(ctx, "no-bulk-read"), "100,000,000 log entries")


def test_no_conditional_write_fails_when_if_match_overwrites(tmp_path: Path,
                                                             store: Path) -> None:
    ctx = _ctx(tmp_path, store, _service_that(
        lambda sc: sc["method"] == "PUT" and _header(sc, b"if-match"), 201))
    _failed(_run(ctx, "no-conditional-write"), "If-Match")


def test_no_governance_relaxation_fails_when_force_bypasses_the_lock(tmp_path: Path,
                                                                     store: Path) -> None:
    ctx = _ctx(tmp_path, store, _service_that(
        lambda sc: sc["method"] == "PUT" and b"force=true" in sc["query_string"], 201))
    _failed(_run(ctx, "no-governance-relaxation"), "?force=true")


def test_no_replication_fails_when_writes_are_copied_elsewhere(
        tmp_path: Path, store: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    replica = tmp_path / "replica"
    replica.mkdir()
    original = Store.put_async

    def put_and_replicate(self: Store, product: str, name: str, data: Any,
                          *a: Any, **k: Any) -> Any:
        fut = original(self, product, name, data, *a, **k)
        fut.add_done_callback(lambda f: (replica / f.result().sha256).write_bytes(b"copy"))
        return fut

    monkeypatch.setattr(Store, "put_async", put_and_replicate)
    seen = _failed(_run(_ctx(tmp_path, store), "no-replication"), "only inside the store")
    assert str(replica) in seen


def test_metadata_validation_fails_when_schemas_are_not_enforced(
        tmp_path: Path, store: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import jsonschema

    import depository.store._artifacts as store_module  # builds the schema validators

    class AcceptsAnything(jsonschema.Draft202012Validator):  # type: ignore[misc,valid-type]
        def iter_errors(self, *a: Any, **k: Any) -> Any:
            return iter(())

    monkeypatch.setattr(store_module.jsonschema, "Draft202012Validator", AcceptsAnything)
    _failed(_run(_ctx(tmp_path, store), "metadata-validation"), "strict schema")


@pytest.mark.parametrize("check_id", ["executor-misbehaves", "ai-escalation"])
def test_scenarios_fail_when_attempts_are_not_attributed(
        tmp_path: Path, store: Path, monkeypatch: pytest.MonkeyPatch, check_id: str) -> None:
    """Detection is the attributed refusal record: a store that logs refusals anonymously
    gives an auditor nothing to detect."""
    def anonymous(orig: Callable[..., Any]) -> Callable[..., Any]:
        return lambda self, *a, **k: orig(self, *a, **{**k, "actor": "anonymous"})

    for method in ("put", "put_async"):
        monkeypatch.setattr(Store, method, anonymous(getattr(Store, method)))
    _failed(_run(_ctx(tmp_path, store), check_id), "detection: the auditor reads")


def test_a_proof_that_does_not_verify_is_a_failed_step(
        tmp_path: Path, store: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Steps after a verifier report its outcome (they were constant True, after a call
    that raised)."""
    def reject(*a: Any, **k: Any) -> Any:
        raise VerificationError("inclusion proof does not match the checkpoint root")

    monkeypatch.setattr(checks, "verify_proof_file", reject)
    seen = _failed(_run(_ctx(tmp_path, store), "provenance"), "tlog-proof")
    assert "does not match" in seen
