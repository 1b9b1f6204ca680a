"""The dashboard's sessions, headers and rules without a browser (the browser test is
``test_dashboard_browser.py``): cookie flags, cross-site sign-in refused, revocation and
expiry end a session, one not-found page, escaping, and what the data layer reads from
load results and a report file."""

from __future__ import annotations

import json
import re
import warnings
from collections.abc import Iterator
from datetime import date
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
from test_service_support import issue_tokens, make_store

from depository.service import create_app
from depository.service._dashboard import COOKIE, CSP, Sessions
from depository.service._dashboard_data import (
    RecordScanner,
    read_load_results,
    verify_signed_report,
)
from depository.store import Store

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Store, TestClient, dict[str, str]]]:
    store = make_store(tmp_path / "store")
    tokens = issue_tokens(store)
    store.put("gurukul", "<script>alert(1)</script>.txt", b"x")
    store.put("ai-avatar", "clip.mp4", b"y")
    store.checkpoint()
    with TestClient(create_app(store), base_url="http://127.0.0.1:8000") as client:
        yield store, client, tokens
    store.close()


def _login(client: TestClient, token: str, **headers: str) -> Any:
    return client.post("/ui/login", content=f"token={token}",
                       headers={"Content-Type": "application/x-www-form-urlencoded",
                                **headers}, follow_redirects=False)


def test_sign_in_sets_only_a_session_id(served: tuple[Store, TestClient,
                                                      dict[str, str]]) -> None:
    _, client, tokens = served
    r = client.get("/ui", follow_redirects=False)
    assert (r.status_code, r.headers["location"]) == (303, "/ui/login")
    r = _login(client, tokens["auditor"])
    assert (r.status_code, r.headers["location"]) == (303, "/ui")
    cookie = r.headers["set-cookie"]
    assert re.match(rf"{COOKIE}=[A-Za-z0-9_-]{{43}}; HttpOnly; Max-Age=28800; Path=/ui; "
                    r"SameSite=strict$", cookie), cookie
    assert tokens["auditor"] not in cookie and "Secure" not in cookie
    page = client.get("/ui")
    assert page.status_code == 200
    assert page.headers["content-security-policy"] == CSP
    assert "'unsafe-inline'" not in CSP and "script-src 'self'" in CSP
    assert page.headers["cache-control"] == "no-store"
    assert tokens["auditor"] not in page.text
    # Signing in again replaces the session: the old id opens nothing.
    old = client.cookies[COOKIE]
    assert _login(client, tokens["admin"]).status_code == 303
    assert client.cookies[COOKIE] != old
    new = client.cookies[COOKIE]
    client.cookies.clear()
    client.cookies.set(COOKIE, old)
    assert client.get("/ui", follow_redirects=False).status_code == 303
    client.cookies.clear()
    client.cookies.set(COOKIE, new)
    assert client.get("/ui", follow_redirects=False).status_code == 200


def test_cookie_is_secure_over_https(tmp_path: Path) -> None:
    store = make_store(tmp_path / "s")
    tok = store.create_token(role="auditor", actor="t")[0]
    with TestClient(create_app(store), base_url="https://dash.example") as client:
        r = _login(client, tok)
        assert "; Secure" in r.headers["set-cookie"]
    store.close()


def test_cross_site_sign_in_is_refused(served: tuple[Store, TestClient,
                                                     dict[str, str]]) -> None:
    _, client, tokens = served
    for headers in ({"Sec-Fetch-Site": "cross-site"}, {"Sec-Fetch-Site": "same-site"},
                    {"Origin": "https://evil.example"}):
        r = _login(client, tokens["auditor"], **headers)
        assert r.status_code == 403 and "set-cookie" not in r.headers, headers
    ok = _login(client, tokens["auditor"], **{"Sec-Fetch-Site": "same-origin",
                                              "Origin": "null"})
    assert ok.status_code == 303
    ok = _login(client, tokens["auditor"], Origin="http://127.0.0.1:8000")
    assert ok.status_code == 303


def test_bad_and_oversized_sign_in(served: tuple[Store, TestClient, dict[str, str]]) -> None:
    _, client, _ = served
    r = _login(client, "nope")
    assert r.status_code == 401 and "unknown, expired or revoked" in r.text
    r = client.post("/ui/login", content=b"token=" + b"a" * 5000,
                    headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert r.status_code == 413
    r = client.post("/ui/login", content=b"a=1&b=2&c=3&d=4&token=x",
                    headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert r.status_code == 400 and "malformed" in r.text


def test_revoking_the_token_ends_the_session(served: tuple[Store, TestClient,
                                                           dict[str, str]]) -> None:
    store, client, tokens = served
    _login(client, tokens["reader:gurukul"])
    assert client.get("/ui").status_code == 200
    tid = next(t.id for t in store.tokens() if t.role == "reader" and t.product == "gurukul")
    store.revoke_token(tid, reason="test", actor="t")
    r = client.get("/ui", follow_redirects=False)
    assert (r.status_code, r.headers["location"]) == (303, "/ui/login")


def test_sessions_expire_and_are_bounded() -> None:
    now = [0.0]
    s = Sessions(idle=10, lifetime=25, max_sessions=2, monotonic=lambda: now[0])
    a = s.create("secret-a")
    now[0] = 9
    assert s.secret(a) == "secret-a"  # used: idle time restarts
    now[0] = 18
    assert s.secret(a) == "secret-a"
    now[0] = 26  # past the lifetime although used recently
    assert s.secret(a) is None
    b = s.create("secret-b")
    now[0] = 37  # idle for 11 s
    assert s.secret(b) is None
    c, d, e = s.create("c"), s.create("d"), s.create("e")
    assert len(s) == 2 and s.secret(c) is None and s.secret(d) == "d" and s.secret(e) == "e"
    s.drop(d)
    assert s.secret(d) is None and s.secret("") is None and s.secret(None) is None


def test_not_found_is_one_page(served: tuple[Store, TestClient, dict[str, str]]) -> None:
    store, client, tokens = served
    _login(client, tokens["reader:gurukul"])
    avatar = store.ls(product="ai-avatar")[0].id
    answers = [client.get(u) for u in (
        "/ui/products/ai-avatar", "/ui/products/nope", "/ui/products/BAD!",
        f"/ui/artifacts/{avatar}/proof", f"/ui/artifacts/{avatar}/record",
        f"/ui/artifacts/art_{'b' * 24}/proof", "/ui/artifacts/x/record",
        "/ui/products/gurukul?cursor=-1", "/ui/static/app.py")]
    assert {r.status_code for r in answers} == {404}
    assert len({r.content for r in answers}) == 1
    assert client.get("/ui/products/gurukul").status_code == 200


def test_everything_is_escaped(served: tuple[Store, TestClient, dict[str, str]]) -> None:
    _, client, tokens = served
    _login(client, tokens["admin"])
    page = client.get("/ui/products/gurukul").text
    assert "<script>alert" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;.txt" in page
    # No template carries inline script or inline event handlers (the CSP would block them).
    folder = resources.files("depository").joinpath("templates", "dashboard")
    for f in folder.iterdir():
        if f.name.endswith(".j2"):
            text = f.read_text(encoding="utf-8")
            assert not re.search(r"<script(?![^>]*(src=|type=\"application/json\"))", text), f
            assert not re.search(r"\son[a-z]+=", text), f


def test_static_files_and_sign_out(served: tuple[Store, TestClient, dict[str, str]]) -> None:
    _, client, tokens = served
    js = client.get("/ui/static/charts.js")
    assert js.status_code == 200 and js.headers["content-type"].startswith("text/javascript")
    assert client.get("/ui/static/dashboard.css").status_code == 200
    _login(client, tokens["auditor"])
    assert client.get("/ui").status_code == 200
    r = client.post("/ui/logout", follow_redirects=False,
                    headers={"Sec-Fetch-Site": "cross-site"})
    assert r.status_code == 403
    assert client.get("/ui").status_code == 200  # still signed in
    r = client.post("/ui/logout", follow_redirects=False)
    assert r.status_code == 303 and f'{COOKIE}=""' in r.headers["set-cookie"]
    assert client.get("/ui", follow_redirects=False).status_code == 303


def test_workers_answer_503(tmp_path: Path) -> None:
    store = make_store(tmp_path / "s")
    with TestClient(create_app(store, dashboard=False)) as client:
        for path in ("/ui", "/ui/login", "/ui/products/gurukul"):
            r = client.get(path)
            assert r.status_code == 503 and "--workers 1" in r.text
    store.close()


def test_load_results_reading(tmp_path: Path) -> None:
    assert read_load_results(None)["state"] == "none"
    assert read_load_results(tmp_path / "absent.json")["state"] == "unreadable"
    (tmp_path / "bad.json").write_text("[1, 2]")
    assert "no 'limits' list" in read_load_results(tmp_path / "bad.json")["detail"]
    (tmp_path / "results.json").write_text(json.dumps({"profile": "certify", "limits": [
        {"id": "artifact-size", "measured": 5, "profile_target": 5, "pass": True,
         "status": "measured", "figure": "measured", "latency_ms": {"p99": 2}}]}))
    got = read_load_results(tmp_path)  # a directory holding results.json
    assert got["state"] == "read" and len(got["limits"]) == 7
    first = got["limits"][0]
    assert (first["measured"], first["pass"], first["latency_ms"]["p99"]) == (5.0, True, 2.0)
    assert got["limits"][1] == {"id": "total-storage", "title": "total-storage",
                                "status": "not-measured", "measured": None, "pass": False,
                                "reason": "absent from the run"}


def test_a_file_that_is_not_a_signed_report_is_not_authentic(tmp_path: Path) -> None:
    pdf = tmp_path / "r.pdf"
    pdf.write_bytes(b"%PDF-1.7\n%%EOF\n")
    out = verify_signed_report(pdf, "k+1+AAAA", date(2026, 12, 4))
    assert out["state"] == "NOT AUTHENTIC" and out.get("days_left") is None
    assert out["problems"]


def test_record_scanner_reads_only_new_records(tmp_path: Path) -> None:
    store = make_store(tmp_path / "s")
    reads = store.reads  # the store's read-only queries (the service opens none itself)
    calls: list[int] = []

    def find(needle: bytes, start: int) -> tuple[list[tuple[int, bytes]], int]:
        calls.append(start)
        return reads.records_containing(needle, start)

    scan = RecordScanner(("certification.run",), keep=2)
    assert scan.refresh(find) == []
    first, _ = store.append_event("certification.run", actor="certify", product=None,
                                  body={"report_id": "r1"})
    store.put("gurukul", "a", b"a")
    got = scan.refresh(find)
    assert [(r["log_index"], r["body"]["report_id"]) for r in got] == [(first, "r1")]
    for rid in ("r2", "r3"):
        store.append_event("certification.run", actor="certify", product=None,
                           body={"report_id": rid})
    got = scan.refresh(find)
    assert [r["body"]["report_id"] for r in got] == ["r3", "r2"]  # newest first, bounded
    assert calls[-1] > calls[1] > calls[0] == 0  # each scan starts where the last ended
    store.close()
    store.close()


OPS_SNAPSHOT = {  # the shape of Operations.snapshot() on the ops branch
    "time": "2026-12-04T10:00:00Z",
    "firing": [{"alertname": "StorageHigh", "fingerprint": "f1", "labels": {},
                "annotations": {}}],
    "schedule": {"jobs": [{"name": "verify", "last_run": "2026-12-04T09:59:00Z",
                           "last_ok": False, "last_summary": "record 7 <b>edited</b>"}],
                 "verified_size": 6, "violation": "record 7 edited"},
    "escalation": {"open": [{"alertname": "StorageHigh", "role": "on-call", "sends": 2,
                             "ack_deadline": "2026-12-05T09:00:00Z", "overdue": True,
                             "acknowledged": False}],
                   "deliveries": [], "closed": [], "routes": []},
}


def test_operations_and_alert_records_render(tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:

    from depository.tlog.record import canonical_json

    store = make_store(tmp_path / "s")
    tok = store.create_token(role="auditor", actor="t")[0]
    app = create_app(store)
    ctx = app.state.service
    leaves = [(40, canonical_json({"type": "alert.delivery", "time": "2026-12-04T10:00:01Z",
                                   "actor": "depository:alerts", "product": None, "body": {
                                       "alertname": "StorageHigh", "channel": "email",
                                       "receiver": "ops@example.org", "role": "on-call",
                                       "status": "firing", "result": "delivered"}})),
              (41, canonical_json({"type": "alert.ack", "time": "2026-12-04T10:05:00Z",
                                   "actor": "token:tok-1", "product": None,
                                   "body": {"fingerprint": "f1", "reason": "on it"}}))]

    def find(needle: bytes, start: int) -> tuple[list[tuple[int, bytes]], int]:
        return [(i, leaf) for i, leaf in leaves if needle in leaf and i >= start], 42

    # The seams: the operations snapshot (ops' Operations on the context) and the log
    # search (the service's read-only connection).
    # The service's real Operations, its snapshot overlaid with the figures above.
    real = ctx.ops.snapshot

    def snapshot(now: Any) -> dict[str, Any]:
        snap = real(now)
        snap["firing"] = OPS_SNAPSHOT["firing"]
        snap["schedule"].update(OPS_SNAPSHOT["schedule"])
        snap["escalation"].update(OPS_SNAPSHOT["escalation"])
        return snap

    monkeypatch.setattr(ctx.ops, "snapshot", snapshot)
    monkeypatch.setattr(ctx.reads, "records_containing", find)
    with TestClient(app) as client:
        _login(client, tok)
        page = client.get("/ui").text
    assert 'data-record-type="alert.delivery"' in page and "ops@example.org" in page
    assert "token:tok-1: on it" in page and "<b>overdue</b>" in page
    assert "record 7 &lt;b&gt;edited&lt;/b&gt;" in page and "FAILED" in page
    assert page.index(">41<") < page.index(">40<")  # newest first
    store.close()
