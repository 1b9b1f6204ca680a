"""Evidence exports over HTTP: legal exports a matter, downloads the zip, the offline
verifier accepts it; roles, product isolation, bad input, and nothing left on failure."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import warnings
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from test_service_support import bearer, issue_tokens, make_store

from depository.service import create_app
from depository.service._exports import ExportSettings
from depository.store import Store
from depository.tlog.record import parse_record
from depository.verifier.package import package_result

with warnings.catch_warnings():  # starlette would rather have httpx2 for its test client
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

EXPORTS = "/v1/evidence/exports"
LESSONS = {"lessons/a.txt": b"lesson a", "lessons/b.txt": b"lesson b",
           "lessons/c.txt": b"lesson c"}
BIG = bytes(range(256)) * 400  # 100 KiB: a blob file, not inline
_ENV = ("DEPOSITORY_EXPORTS_DIR", "DEPOSITORY_EVIDENCE_KEY", "DEPOSITORY_TSA_URL",
        "DEPOSITORY_ORGANISATION")


@dataclass
class Env:
    store: Store
    c: TestClient
    s: dict[str, str]
    aid: dict[str, str]
    holds: dict[str, str]
    exports: Path

    def h(self, who: str) -> dict[str, str]:
        return bearer(self.s[who])

    def post(self, who: str, body: Any) -> Any:
        return self.c.post(EXPORTS, json=body, headers=self.h(who))

    def leftovers(self) -> list[str]:
        return sorted(p.name for p in self.exports.iterdir()) if self.exports.exists() else []


def _env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
         settings: ExportSettings | None = None) -> Iterator[Env]:
    for name in _ENV:
        monkeypatch.delenv(name, raising=False)
    store = make_store(tmp_path / "store")
    secrets = issue_tokens(store)
    aid = {name: store.put("gurukul", name, data, actor="t").artifact_id
           for name, data in LESSONS.items()}
    aid["avatar"] = store.put("ai-avatar", "avatar.bin", b"avatar bytes").artifact_id
    aid["big"] = store.put("enforcement", "case/big.bin", BIG).artifact_id
    holds = {
        "M-1": store.place_hold(matter="M-1", reason="subpoena 24-17", actor="t",
                                artifact_ids=[aid["lessons/a.txt"], aid["lessons/b.txt"]]).id,
        "M-AV": store.place_hold(matter="M-AV", reason="inquiry", actor="t",
                                 artifact_ids=[aid["avatar"]]).id,
        "M-BIG": store.place_hold(matter="M-BIG", reason="audit", actor="t",
                                  artifact_ids=[aid["big"]]).id,
    }
    app = create_app(store, exports=settings)
    with TestClient(app, raise_server_exceptions=False) as client:
        yield Env(store, client, secrets, aid, holds, tmp_path / "store" / "exports")
    store.close()


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Env]:
    yield from _env(tmp_path, monkeypatch)


def _problem(r: Any, status: int, slug: str, field: str | None) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/problem+json"
    p: dict[str, Any] = r.json()
    assert p["type"] == f"/problems/{slug}" and p.get("field") == field, p
    assert p["detail"] and p["action"]
    return p


def _export_records(store: Store) -> list[int]:
    return [i for i, leaf in store.log_entries(0, store.size())
            if parse_record(leaf, index=i).type == "evidence.export"]


# ------------------------------------------------------------------- happy path
def test_legal_exports_a_matter_and_the_download_verifies(env: Env, tmp_path: Path) -> None:
    r = env.post("legal:gurukul", {"matter": "M-1", "reason": "production to counsel",
                                   "load_file": "dat"})
    assert r.status_code == 201, r.text
    out = r.json()
    assert out["matter"] == "M-1" and out["product"] == "gurukul"
    assert (out["artifacts"], out["disposed"], out["holds"]) == (2, 0, 1)
    assert out["export_id"] == f"export-{out['log_index']}"
    assert r.headers["location"] == out["location"] == f"{EXPORTS}/{out['export_id']}"
    assert out["package"].startswith("M-1-") and out["package"].endswith(".zip")

    # the export is an evidence.export record, attributed to the token
    rec = env.store.record(out["log_index"])
    token_id = env.c.get("/v1/whoami", headers=env.h("legal:gurukul")).json()["token_id"]
    assert rec.type == "evidence.export" and rec.actor == f"token:{token_id}"
    assert rec.product == "gurukul" and rec.body["matter"] == "M-1"
    assert rec.body["reason"] == "production to counsel" and rec.body["artifacts"] == 2
    assert _export_records(env.store) == [out["log_index"]]

    got = env.c.get(out["location"], headers=env.h("legal:gurukul"))
    assert got.status_code == 200
    assert got.headers["content-type"] == "application/zip"
    assert got.headers["content-disposition"] == f'attachment; filename="{out["package"]}"'
    digest = hashlib.sha256(got.content).digest()
    assert digest.hex() == out["sha256"] and len(got.content) == out["size"]
    assert got.headers["repr-digest"] == f"sha-256=:{base64.b64encode(digest).decode()}:"

    pkg = tmp_path / out["package"]
    pkg.write_bytes(got.content)
    res = package_result(pkg, [env.store.verifier_key])
    assert res.ok, [str(p) for p in res.problems]
    assert res.summary["matter"] == "M-1" and res.summary["product"] == "gurukul"
    assert res.summary["artifacts"] == 2
    with zipfile.ZipFile(io.BytesIO(got.content)) as z:
        bag = out["package"][:-4]
        items = [json.loads(line) for line in z.read(f"{bag}/data/items.jsonl").splitlines()]
        assert {i["name"] for i in items} == {"lessons/a.txt", "lessons/b.txt"}
        for i in items:
            assert z.read(f"{bag}/data/{i['path']}") == LESSONS[i["name"]]
        assert z.read(f"{bag}/data/loadfile.dat")
        info = z.read(f"{bag}/bag-info.txt").decode()
        assert f"/{out['export_id']}\n" in info  # External-Identifier names the same id

    # kept as one complete directory per export, outside objects/
    assert env.leftovers() == [out["export_id"]]
    kept = sorted(p.name for p in (env.exports / out["export_id"]).iterdir())
    assert kept == sorted(["export.json", out["package"]])

    part = env.c.get(out["location"], headers={**env.h("legal"), "Range": "bytes=0-99"})
    assert part.status_code == 206 and part.content == got.content[:100]
    assert part.headers["content-range"] == f"bytes 0-99/{out['size']}"


def test_store_wide_legal_export_and_fetch(env: Env) -> None:
    r = env.post("legal", {"matter": "M-AV", "reason": "inquiry 7"})
    assert r.status_code == 201, r.text
    out = r.json()
    assert out["product"] == "ai-avatar" and out["artifacts"] == 1
    for who in ("legal", "legal:ai-avatar"):
        got = env.c.get(out["location"], headers=env.h(who))
        assert got.status_code == 200
        assert hashlib.sha256(got.content).hexdigest() == out["sha256"]
    r = env.post("legal", {"matter": "ad hoc", "reason": "review", "product": "gurukul",
                           "from": "2000-01-01", "artifacts": [env.aid["lessons/c.txt"]]})
    assert r.status_code == 201, r.text
    assert r.json()["artifacts"] == 1 and r.json()["holds"] == 0


# ------------------------------------------------------------------------ roles
def test_other_roles_may_not_export_or_fetch(env: Env) -> None:
    size = env.store.size()
    for who in ("reader:gurukul", "writer:gurukul", "auditor", "admin"):
        _problem(env.post(who, {"matter": "M-1", "reason": "x"}), 403, "forbidden",
                 "header:Authorization")
    _problem(env.c.post(EXPORTS, json={"matter": "M-1", "reason": "x"}), 401,
             "unauthorized", "header:Authorization")
    assert env.store.size() == size and env.leftovers() == []
    out = env.post("legal", {"matter": "M-1", "reason": "r"}).json()
    missing = env.c.get(f"{EXPORTS}/export-999999", headers=env.h("legal")).json()
    for who in ("reader:gurukul", "writer:gurukul", "auditor", "admin"):
        r = env.c.get(out["location"], headers=env.h(who))
        p = _problem(r, 404, "not-found", "path:export_id")
        assert p["detail"] == missing["detail"].replace("export-999999", out["export_id"])


# -------------------------------------------------------------------- isolation
def _same_answer(a: Any, b: Any, swap: tuple[str, str]) -> None:
    """``a`` is exactly ``b`` with one echoed name replaced: it tells nothing more."""
    assert a.status_code == b.status_code == 404
    ja, jb = a.json(), b.json()
    assert ja == json.loads(json.dumps(jb).replace(*swap))


def test_a_product_scoped_legal_token_sees_nothing_of_other_products(env: Env) -> None:
    size = env.store.size()
    av = "legal:ai-avatar"
    # another product's matter answers like a matter nobody has heard of
    a = env.post(av, {"matter": "M-1", "reason": "r"})
    b = env.post(av, {"matter": "M-NO", "reason": "r"})
    _problem(a, 404, "not-found", "body:matter")
    _same_answer(a, b, ("M-NO", "M-1"))
    # ... and so do another product, its artifacts and its holds
    a = env.post(av, {"matter": "M-1", "reason": "r", "product": "gurukul"})
    b = env.post(av, {"matter": "M-1", "reason": "r", "product": "nope"})
    _problem(a, 404, "not-found", "body:product")
    _same_answer(a, b, ("nope", "gurukul"))
    fake = "art_" + "a" * 24
    a = env.post(av, {"matter": "M-1", "reason": "r", "artifacts": [env.aid["lessons/a.txt"]]})
    b = env.post(av, {"matter": "M-1", "reason": "r", "artifacts": [fake]})
    _problem(a, 404, "not-found", "body:artifacts/0")
    _same_answer(a, b, (fake, env.aid["lessons/a.txt"]))
    a = env.post(av, {"matter": "M-1", "reason": "r", "holds": [env.holds["M-1"]]})
    b = env.post(av, {"matter": "M-1", "reason": "r", "holds": ["hold-999999"]})
    _problem(a, 404, "not-found", "body:holds/0")
    _same_answer(a, b, ("hold-999999", env.holds["M-1"]))
    for r in (a, b):
        assert "gurukul" not in r.text and "lesson" not in r.text
    assert env.store.size() == size and env.leftovers() == []

    # another product's export answers like a missing one
    out = env.post("legal:gurukul", {"matter": "M-1", "reason": "r"}).json()
    a = env.c.get(out["location"], headers=env.h(av))
    b = env.c.get(f"{EXPORTS}/export-999999", headers=env.h(av))
    _problem(a, 404, "not-found", "path:export_id")
    _same_answer(a, b, ("export-999999", out["export_id"]))
    assert "gurukul" not in a.text and out["sha256"] not in a.text

    # its own product in full: M-1's holds elsewhere are invisible, not a refusal
    r = env.post(av, {"matter": "M-1", "reason": "r", "product": "ai-avatar"})
    assert r.status_code == 201, r.text
    assert r.json()["product"] == "ai-avatar" and r.json()["artifacts"] == 1
    assert r.json()["holds"] == 1 and "gurukul" not in r.text  # M-AV covers avatar.bin
    # a store-wide token may learn where the matter's holds are
    p = _problem(env.post("legal", {"matter": "M-1", "reason": "r", "product": "ai-avatar"}),
                 422, "export-refused", "body:product")
    assert "gurukul" in p["detail"]


# -------------------------------------------------------------------- bad input
BAD: list[tuple[dict[str, Any], int, str, str]] = [
    ({"reason": "r"}, 400, "invalid-body", "body:matter"),
    ({"matter": " ", "reason": "r"}, 400, "invalid-body", "body:matter"),
    ({"matter": "M-1"}, 400, "invalid-body", "body:reason"),
    ({"matter": "M-1", "reason": "r", "from": "yesterday"}, 400, "invalid-parameter",
     "body:from"),
    ({"matter": "M-1", "reason": "r", "to": 5}, 400, "invalid-body", "body:to"),
    ({"matter": "M-1", "reason": "r", "from": "2026-02-01", "to": "2026-01-01"}, 400,
     "invalid-body", "body:to"),
    ({"matter": "M-1", "reason": "r", "artifact_ids": ["x"]}, 400, "invalid-body",
     "body:artifact_ids"),
    ({"matter": "M-1", "reason": "r", "artifacts": []}, 400, "invalid-body",
     "body:artifacts"),
    ({"matter": "M-1", "reason": "r", "holds": "hold-1"}, 400, "invalid-body", "body:holds"),
    ({"matter": "M-1", "reason": "r", "holds": ["h-1", "h-2", "h-1"]}, 400, "invalid-body",
     "body:holds/2"),
    ({"matter": "M-1", "reason": "r", "load_file": "csv"}, 400, "invalid-body",
     "body:load_file"),
    ({"matter": "M-1", "reason": "r", "artifacts": ["art_" + "b" * 24]}, 404, "not-found",
     "body:artifacts/0"),
    ({"matter": "M-1", "reason": "r", "holds": ["hold-424242"]}, 404, "not-found",
     "body:holds/0"),
    ({"matter": "M-NONE", "reason": "r"}, 404, "not-found", "body:matter"),
    ({"matter": "M-1", "reason": "r", "product": "nope"}, 404, "unknown-product",
     "body:product"),
    ({"matter": "M-1", "reason": "r", "from": "2099-01-01"}, 422, "export-refused",
     "body:from"),
]


@pytest.mark.parametrize(("body", "status", "slug", "field"), BAD)
def test_bad_input_is_a_problem_and_leaves_nothing(env: Env, body: dict[str, Any],
                                                   status: int, slug: str, field: str) -> None:
    size = env.store.size()
    _problem(env.post("legal", body), status, slug, field)
    assert env.store.size() == size and env.leftovers() == []


def test_refusals_that_need_the_store(env: Env) -> None:
    size = env.store.size()
    both = [env.aid["lessons/c.txt"], env.aid["avatar"]]
    p = _problem(env.post("legal", {"matter": "M", "reason": "r", "artifacts": both}), 422,
                 "export-refused", "body:artifacts")
    assert "ai-avatar, gurukul" in p["detail"]
    p = _problem(env.post("legal", {"matter": "M-AV", "reason": "r",
                                    "holds": [env.holds["M-1"]]}),
                 422, "export-refused", "body:holds/0")
    assert "belongs to matter 'M-1'" in p["detail"]
    _problem(env.post("legal", {"matter": "M-1", "reason": "r", "holds": [env.holds["M-1"]],
                                "artifacts": [env.aid["lessons/a.txt"]]}),
             400, "invalid-body", "body:holds")
    r = env.c.post(EXPORTS, content=b"{bad", headers=env.h("legal"))
    _problem(r, 400, "invalid-body", "body")
    assert env.store.size() == size and env.leftovers() == []


def test_a_damaged_artifact_stops_the_export_and_nothing_remains(env: Env) -> None:
    blob = next((env.store.path / "objects").glob(f"??/??/{hashlib.sha256(BIG).hexdigest()}"))
    blob.chmod(0o644)
    blob.write_bytes(b"X" + BIG[1:])
    size = env.store.size()
    p = _problem(env.post("legal", {"matter": "M-BIG", "reason": "r"}), 422,
                 "export-refused", "body")
    assert env.aid["big"] in p["detail"] and "damaged" in p["detail"]
    assert env.store.size() == size and _export_records(env.store) == []
    assert env.leftovers() == []


def test_a_governance_lock_refuses_the_export_and_nothing_remains(env: Env) -> None:
    r = env.c.post("/v1/governance/lock", json={"reason": "investigation"},
                   headers=env.h("admin"))
    assert r.status_code == 200, r.text
    size = env.store.size()
    p = _problem(env.post("legal", {"matter": "M-1", "reason": "r"}), 503,
                 "governance-locked", None)
    assert p["reason"] == "investigation"
    assert env.store.size() == size and env.leftovers() == []


def test_timestamp_authority_failure_keeps_no_package(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    exports = tmp_path / "elsewhere"
    settings = ExportSettings(directory=exports, tsa_url="http://127.0.0.1:9/tsa")
    for e in _env(tmp_path, monkeypatch, settings):
        p = _problem(e.post("legal", {"matter": "M-1", "reason": "r"}), 502,
                     "timestamp-failed", None)
        assert "127.0.0.1:9" in p["detail"] and "no package was kept" in p["detail"]
        # the attempt is in the log (the library appends before timestamping); no file is
        assert len(_export_records(e.store)) == 1
        assert sorted(p.name for p in exports.iterdir()) == []
        assert not (e.store.path / "exports").exists()


def test_exports_default_to_the_store_and_follow_the_environment(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert ExportSettings.from_env(tmp_path).directory == tmp_path / "exports"
    monkeypatch.setenv("DEPOSITORY_EXPORTS_DIR", str(tmp_path / "x"))
    monkeypatch.setenv("DEPOSITORY_TSA_URL", "http://tsa.example/")
    s = ExportSettings.from_env(tmp_path)
    assert s.directory == tmp_path / "x" and s.tsa_url == "http://tsa.example/"
