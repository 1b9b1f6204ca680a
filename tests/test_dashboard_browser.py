"""The dashboard in a real headless browser (Debian's Chromium driven by Playwright)
against a real ``depository serve`` on 127.0.0.1 over a store this test builds: the pages
load with their chart script under the Content-Security-Policy, show this store's numbers,
a product token sees only its product (pages and direct URLs), the proof button's file
verifies with the real verifier, and sign-out ends the session. Screenshots go to
``test-output/dashboard/`` (gitignored)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from test_service_server import Server
from test_service_support import issue_tokens, make_store

from depository.store import Store
from depository.tlog.merkle import leaf_hash
from depository.verifier import commands

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
SHOTS = Path(__file__).resolve().parent.parent / "test-output" / "dashboard"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]

# (id, unit, target, profile target, measured, pass, status) as a quick run reports them
LIMITS = [
    ("artifact-size", "bytes", 5368709120, 268435456, 268435456, True, "measured"),
    ("total-storage", "bytes", 10995116277760, 1073741824, 1181116006, True, "measured"),
    ("concurrent-writers", "writers", 1000, 50, 50, True, "measured"),
    ("write-throughput", "writes/s", 1000, 100, 87.5, False, "measured"),
    ("artifact-count", "artifacts", 10000000, 100000, 100000, True, "measured"),
    ("query-response", "seconds", 0.1, 0.1, 0.0213, True, "measured"),
    ("audit-trail", "records", None, 100000, None, False, "not-measured"),
]


def _results(path: Path) -> Path:
    limits = []
    for lid, unit, target, ptarget, measured, ok, status in LIMITS:
        limits.append({
            "id": lid, "title": lid.replace("-", " ").title(), "description": "",
            "target": target, "unit": unit, "profile_target": ptarget, "measured": measured,
            "pass": ok, "status": status,
            "figure": "scaled-down" if status == "measured" else "measured",
            "method": "test", "profile": "quick", "load": {},
            "latency_ms": {"p50": 3.0, "p95": 11.0, "p99": 29.5, "max": 40.0}
            if status == "measured" else {"p50": None, "p95": None, "p99": None, "max": None},
            "throughput": None, "requests": 10, "errors": 0, "lost": 0, "checks": [],
            "details": {}, "reason": None if ok else "below the target", "raw": None,
            "chart": None, "started": None, "ended": None, "seconds": 1})
    doc = {"schema_version": 1, "tool": "depository loadtest", "profile": "quick",
           "complete": False, "pass": False, "started": "2026-12-01T10:00:00Z",
           "ended": "2026-12-01T10:05:00Z", "seconds": 300, "target": {},
           "command": [], "environment": {}, "limits": limits, "not_measured": [],
           "error": None}
    path.write_text(json.dumps(doc))
    return path


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian's chromium is not installed (make system-deps installs it)")
    base = tmp_path_factory.mktemp("dash")
    store_dir = base / "store"
    store = make_store(store_dir)
    tokens = issue_tokens(store)
    ids: dict[str, list[str]] = {"gurukul": [], "ai-avatar": []}
    for i in range(3):
        ids["gurukul"].append(store.put("gurukul", f"lessons/l{i}.pdf", b"lesson %d" % i,
                                        metadata={"course": "algebra"}).artifact_id)
    for i in range(2):
        ids["ai-avatar"].append(store.put("ai-avatar", f"<b>clip{i}</b>.mp4",
                                          b"clip %d" % i).artifact_id)
    store.append_event("certification.run", actor="certify", product=None,
                       body={"report_id": "cert-20261201-000000-test"})
    store.checkpoint()
    vkey = store.verifier_key
    store.close()
    report = base / "report-signed.pdf"
    report.write_bytes(b"%PDF-1.7\n% not a signed report\n%%EOF\n")
    server = Server(store_dir, "--load-results", str(_results(base / "results.json")),
                    "--certification-report", str(report))
    from playwright.sync_api import sync_playwright

    SHOTS.mkdir(parents=True, exist_ok=True)
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                yield {"server": server, "browser": browser, "tokens": tokens, "ids": ids,
                       "store_dir": store_dir, "vkey": vkey, "base": base}
            finally:
                browser.close()
    finally:
        server.stop()


def _login(site: dict[str, Any], token: str) -> Any:
    ctx = site["browser"].new_context(viewport={"width": 1280, "height": 900},
                                      accept_downloads=True)
    page = ctx.new_page()
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(site["server"].url + "/ui")
    assert page.url.endswith("/ui/login")
    page.fill("#token", token)
    page.click("#sign-in")
    page.wait_for_url("**/ui")
    page.errors = errors
    return page


def _cell(row: Any, selector: str) -> str:
    return str(row.query_selector(selector).inner_text())


def _expected(store_dir: Path) -> tuple[int, int]:
    with Store.open(store_dir, readonly=True) as s:
        return s.size(), s.latest_checkpoint()[0]


def test_auditor_sees_the_store(site: dict[str, Any]) -> None:
    page = _login(site, site["tokens"]["auditor"])
    page.wait_for_selector("body[data-charts=drawn]")
    size, cp_size = _expected(site["store_dir"])
    assert page.inner_text("#log-size") == f"{size:,}"
    assert page.inner_text("#checkpoint-size") == f"{cp_size:,}"
    assert f"{cp_size}\n" in page.inner_text("#checkpoint-note")
    counts = {r.get_attribute("data-product"): _cell(r, "[data-field=artifacts]")
              for r in page.query_selector_all("#products tr[data-product]")}
    assert counts == {"ai-assistant": "0", "ai-avatar": "2", "enforcement": "0",
                      "gurukul": "3"}
    # The seven limits from results.json, as measured and judged.
    rows = {r.get_attribute("data-limit"): (_cell(r, "[data-field=measured]"),
                                            _cell(r, "[data-field=result]"))
            for r in page.query_selector_all("#limits tr[data-limit]")}
    assert rows == {
        "artifact-size": ("268,435,456", "pass"), "total-storage": ("1,181,116,006", "pass"),
        "concurrent-writers": ("50", "pass"), "write-throughput": ("87.5", "fail"),
        "artifact-count": ("100,000", "pass"), "query-response": ("0.021", "pass"),
        "audit-trail": ("—", "not measured")}
    assert "scaled-down figures, indicative only" in page.inner_text("#scale")
    # The chart script ran under the CSP: one bar per measured limit, with the ratio.
    bars = page.query_selector_all("#chart-load rect")
    assert len(bars) == 6
    ratios = sorted(round(float(b.get_attribute("data-value") or 0), 1) for b in bars)
    assert ratios == [21.3, 87.5, 100.0, 100.0, 100.0, 110.0]
    assert len(page.query_selector_all("#chart-latency rect")) == 18
    assert len(page.query_selector_all("#chart-live svg")) == 1
    # A file that is not a signed report is never shown as certified.
    assert page.inner_text("#cert-state") == "NOT AUTHENTIC"
    assert "cert-20261201-000000-test" in page.inner_text("#cert-log")
    assert page.inner_text("#gov-state").startswith("UNLOCKED")
    assert page.errors == []
    page.screenshot(path=str(SHOTS / "overview-auditor.png"), full_page=True)
    page.context.close()


def test_proof_button_downloads_a_proof_that_verifies(site: dict[str, Any],
                                                      tmp_path: Path) -> None:
    page = _login(site, site["tokens"]["admin"])
    page.click("a[data-browse=gurukul]")
    page.wait_for_url("**/ui/products/gurukul")
    assert page.inner_text("#artifact-count") == "3"
    assert len(page.query_selector_all("#artifacts tr[data-artifact]")) == 3
    aid = site["ids"]["gurukul"][1]
    with page.expect_download() as dl:
        page.click(f"a[data-proof={aid}]")
    proof = tmp_path / "p.tlog-proof"
    dl.value.save_as(proof)
    with page.expect_download() as dl2:
        page.click(f"a[data-record={aid}]")
    leaf = tmp_path / "leaf.json"
    dl2.value.save_as(leaf)
    with Store.open(site["store_dir"], readonly=True) as s:
        art = s.get_by_id(aid)
        stored_leaf = next(iter(s.log_entries(art.log_index, art.log_index + 1)))[1]
    assert leaf.read_bytes() == stored_leaf
    out = commands.proof(proof_file=str(proof), keys=[site["vkey"]],
                         leaf_file=None, leaf_hash=leaf_hash(stored_leaf).hex(), origin=None)
    assert out.ok, out.error
    # The command the page prints, on the two downloaded files.
    cli = subprocess.run([sys.executable, "-m", "depository.verifier", "proof", str(proof),
                          "--leaf", str(leaf), "--key", site["vkey"]],
                         capture_output=True, text=True)
    assert cli.returncode == 0, cli.stdout + cli.stderr
    # The same file does not prove another record, and a flipped byte fails.
    other = commands.proof(proof_file=str(proof), keys=[site["vkey"]], leaf_file=None,
                           leaf_hash=leaf_hash(b"{}").hex(), origin=None)
    assert not other.ok
    data = bytearray(proof.read_bytes())
    data[-5] ^= 0x01
    proof.write_bytes(bytes(data))
    assert not commands.proof(proof_file=str(proof), keys=[site["vkey"]], leaf_file=None,
                              leaf_hash=leaf_hash(stored_leaf).hex(), origin=None).ok
    page.screenshot(path=str(SHOTS / "artifacts-gurukul.png"), full_page=True)
    # Names are text, never markup.
    page.goto(site["server"].url + "/ui/products/ai-avatar")
    assert "<b>clip0</b>.mp4" in page.inner_text("#artifacts")
    assert page.query_selector("#artifacts b") is None
    page.context.close()


def test_product_token_sees_only_its_product(site: dict[str, Any]) -> None:
    page = _login(site, site["tokens"]["reader:gurukul"])
    assert page.inner_text("#scope") == "gurukul"
    html = page.content()
    assert [r.get_attribute("data-product") for r in
            page.query_selector_all("#products tr[data-product]")] == ["gurukul"]
    for hidden in ("ai-avatar", "enforcement", "clip0", "#certification", "id=\"limits\""):
        assert hidden not in html
    assert page.query_selector("#certification") is None
    assert page.query_selector("#scope-note") is not None
    page.screenshot(path=str(SHOTS / "overview-product.png"), full_page=True)
    # Direct URLs to another product: the one not-found page, byte for byte.
    req = page.context.request
    url = site["server"].url
    other = req.get(f"{url}/ui/products/ai-avatar")
    missing = req.get(f"{url}/ui/products/no-such-product")
    assert other.status == missing.status == 404
    assert other.body() == missing.body()
    foreign = site["ids"]["ai-avatar"][0]
    for what in ("proof", "record"):
        a = req.get(f"{url}/ui/artifacts/{foreign}/{what}")
        b = req.get(f"{url}/ui/artifacts/art_{'a' * 24}/{what}")
        assert a.status == b.status == 404 and a.body() == b.body() == other.body()
    own = req.get(f"{url}/ui/artifacts/{site['ids']['gurukul'][0]}/proof")
    assert own.status == 200 and own.body().startswith(b"c2sp.org/tlog-proof@v1")
    page.goto(f"{url}/ui/products/ai-avatar")
    assert page.inner_text("#not-found") == "Not found"
    page.screenshot(path=str(SHOTS / "not-found-other-product.png"))
    page.context.close()


def test_sign_out_ends_the_session(site: dict[str, Any]) -> None:
    page = _login(site, site["tokens"]["auditor"])
    cookies = page.context.cookies()
    (cookie,) = [c for c in cookies if c["name"] == "depository_ui"]
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    assert cookie["value"] not in (site["tokens"]["auditor"],)
    page.click("#logout")
    page.wait_for_url("**/ui/login")
    page.goto(site["server"].url + "/ui")
    assert page.url.endswith("/ui/login")
    # The old session id no longer opens anything.
    r = httpx.get(site["server"].url + "/ui", cookies={"depository_ui": cookie["value"]},
                  follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/ui/login"
    page.fill("#token", "not-a-token")
    page.click("#sign-in")
    assert "unknown, expired or revoked" in page.inner_text("#login-error")
    page.screenshot(path=str(SHOTS / "login-refused.png"))
    page.context.close()
