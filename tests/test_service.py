"""The HTTP service in-process: uploads, reads, proofs, tiles, errors, roles, isolation,
monitoring. (Real-server drills are in test_service_server.py.)"""

from __future__ import annotations

import base64
import hashlib
import json
import time
import warnings
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from test_service_support import PRODUCTS, bearer, issue_tokens, make_store

from depository.service import _tiles as tiles
from depository.service import create_app
from depository.service._monitoring import (
    AlertTracker,
    Figures,
    LatencyWindow,
    RateWindow,
    ServiceMetrics,
    alert_level,
    level_name,
    scale_status,
    storage_alerts,
)
from depository.service._problems import Problem
from depository.store import NotFoundError, Store
from depository.store.config import parse_config
from depository.tlog import merkle
from depository.tlog.checkpoint import parse_checkpoint, verify_checkpoint, verify_proof_file

with warnings.catch_warnings():  # starlette would rather have httpx2 for its test client
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

B = base64.b64decode


class Env:
    def __init__(self, store: Store, client: TestClient, secrets: dict[str, str]) -> None:
        self.store = store
        self.c = client
        self.s = secrets

    def h(self, who: str, **extra: str) -> dict[str, str]:
        return {**bearer(self.s[who]), **extra}

    def put(self, product: str, name: str, body: bytes, who: str | None = None,
            **headers: str) -> Any:
        return self.c.put(f"/v1/products/{product}/artifacts/{name}", content=body,
                          headers=self.h(who or f"writer:{product}", **headers))

    def wait_checkpoint(self, size: int) -> None:
        deadline = time.monotonic() + 5
        while self.store.latest_checkpoint()[0] < size:
            assert time.monotonic() < deadline
            time.sleep(0.02)


def _env(tmp_path: Path, **cfg: Any) -> Iterator[Env]:
    store = make_store(tmp_path / "store", **cfg)
    secrets = issue_tokens(store)
    with TestClient(create_app(store), raise_server_exceptions=False) as client:
        yield Env(store, client, secrets)
    store.close()


@pytest.fixture
def env(tmp_path: Path) -> Iterator[Env]:
    yield from _env(tmp_path)


# ----------------------------------------------------------------------- uploads
def test_upload_receipt_duplicate_and_write_once(env: Env) -> None:
    r = env.put("gurukul", "lessons/l1.txt", b"lesson one",
                **{"Depository-Metadata": '{"course": "algebra"}',
                   "Depository-Provenance": '{"author": "t1"}', "Content-Type": "text/plain"})
    assert r.status_code == 201, r.text
    rec = r.json()
    assert rec["sha256"] == hashlib.sha256(b"lesson one").hexdigest()
    assert rec["name"] == "lessons/l1.txt" and rec["duplicate"] is False
    assert r.headers["location"] == "/v1/products/gurukul/artifacts/lessons/l1.txt"
    # the record in the log is the one the receipt names, attributed to the token
    leaf = next(iter(env.store.log_entries(rec["log_index"], rec["log_index"] + 1)))[1]
    assert merkle.leaf_hash(leaf).hex() == rec["leaf_hash"]
    body = json.loads(leaf)
    assert body["actor"].startswith("token:tok-") and body["body"]["metadata"] == {
        "course": "algebra"}
    again = env.put("gurukul", "lessons/l1.txt", b"lesson one")
    assert again.status_code == 200 and again.json()["duplicate"] is True
    assert again.json()["log_index"] == rec["log_index"]
    size = env.store.size()
    clash = env.put("gurukul", "lessons/l1.txt", b"lesson two")
    assert clash.status_code == 409
    p = clash.json()
    assert p["type"] == "/problems/write-once" and p["field"] == "path:name"
    assert clash.headers["content-type"] == "application/problem+json"
    assert env.store.record(size).type == "artifact.refused"  # the attempt is logged


def test_wait_checkpoint_returns_a_verifiable_tlog_proof(env: Env) -> None:
    r = env.c.put("/v1/products/ai-avatar/artifacts/a.bin?wait=checkpoint", content=b"x" * 10,
                  headers=env.h("writer:ai-avatar"))
    assert r.status_code == 201
    rec = r.json()
    cp = verify_proof_file(rec["tlog_proof"].encode(), bytes.fromhex(rec["leaf_hash"]),
                           [env.store.verifier_key])
    assert cp.size > rec["log_index"]
    assert parse_checkpoint(rec["checkpoint"].encode().split(b"\n\n")[0] + b"\n").size \
        == cp.size


def test_streamed_upload_larger_than_inline(env: Env) -> None:
    data = bytes(range(256)) * (3 * 4096 + 7)  # ~3 MiB: goes through the body pipe
    r = env.put("enforcement", "big/blob", data)
    assert r.status_code == 201, r.text
    art = env.store.get("enforcement", "big/blob")
    assert art.storage == "file" and art.sha256 == hashlib.sha256(data).hexdigest()
    got = env.c.get("/v1/products/enforcement/artifacts/big/blob",
                    headers=env.h("reader:enforcement"))
    assert got.status_code == 200 and got.content == data
    assert got.headers["repr-digest"] == (
        "sha-256=:" + base64.b64encode(hashlib.sha256(data).digest()).decode() + ":")


def test_oversize_is_refused_before_and_while_reading(tmp_path: Path) -> None:
    for e in _env(tmp_path, max_artifact_size=100_000):
        r = e.put("gurukul", "too/big", b"z" * 100_001)
        assert r.status_code == 413 and r.json()["type"] == "/problems/too-large"
        assert r.json()["max_artifact_size"] == 100_000

        def chunks() -> Iterator[bytes]:  # no Content-Length: enforced while streaming
            for _ in range(30):
                yield b"q" * 10_000

        r = e.c.put("/v1/products/gurukul/artifacts/too/big2", content=chunks(),
                    headers=e.h("writer:gurukul"))
        assert r.status_code == 413
        assert r.headers.get("connection") == "close"
        assert e.store.ls(product="gurukul") == []
        assert list(e.store.blobs.tmp.glob("upload-*")) == []


@pytest.mark.parametrize(("header", "value", "field", "type_"), [
    ("Depository-Metadata", "{not json", "header:Depository-Metadata", "invalid-header"),
    ("Depository-Metadata", "[1, 2]", "header:Depository-Metadata", "invalid-header"),
    ("Depository-Metadata", '{"a": NaN}', "header:Depository-Metadata", "invalid-header"),
    ("Depository-Metadata", '{"a": 1, "a": 2}', "header:Depository-Metadata",
     "invalid-header"),
    ("Depository-Metadata", '{"n": 18014398509481985}', "header:Depository-Metadata",
     "invalid-header"),
    ("Depository-Provenance", '"text"', "header:Depository-Provenance", "invalid-header"),
    ("Depository-Metadata", '{"x": "' + "y" * 20000 + '"}', "header:Depository-Metadata",
     "header-too-large"),
    ("Depository-Retain-Until", "next tuesday", "header:Depository-Retain-Until",
     "invalid-parameter"),
    ("Depository-Retain-Until", "2020-01-01", "body", "retention-refused"),
    ("Content-Type", "not a type", "header:Content-Type", "invalid-header"),
])
def test_bad_upload_headers_are_problems_and_store_nothing(
        env: Env, header: str, value: str, field: str, type_: str) -> None:
    size = env.store.size()
    r = env.put("gurukul", "bad/1", b"data", **{header: value})
    assert 400 <= r.status_code < 500, r.text
    p = r.json()
    assert p["type"] == f"/problems/{type_}" and p["field"] == field and p["action"]
    assert env.store.size() == size and env.store.ls(product="gurukul") == []


def test_bad_names(env: Env) -> None:
    r = env.put("gurukul", "a%01b", b"1")
    assert r.status_code == 400 and r.json()["field"] == "path:name"
    r = env.put("gurukul", "n" * 1025, b"1")
    assert r.status_code == 400 and r.json()["field"] == "path:name"


def test_metadata_failing_the_product_schema_is_422_with_the_field(tmp_path: Path) -> None:
    from test_service_support import store_config

    cfg = store_config()
    cfg["products"]["gurukul"]["metadata_schema"] = {
        "type": "object", "required": ["course"],
        "properties": {"course": {"type": "string"}, "grade": {"type": "integer"}}}
    for e in _env(tmp_path, products=cfg["products"]):
        r = e.put("gurukul", "m/1", b"1", **{"Depository-Metadata": '{"course": "a", '
                                                                   '"grade": "x"}'})
        assert r.status_code == 422
        assert r.json()["field"] == "header:Depository-Metadata/grade"
        r = e.put("gurukul", "m/2", b"1")
        assert r.status_code == 422 and r.json()["field"] == "header:Depository-Metadata"
        assert e.put("gurukul", "m/3", b"1",
                     **{"Depository-Metadata": '{"course": "a"}'}).status_code == 201


def test_quotas_answer_507_and_429_with_figures(tmp_path: Path) -> None:
    from test_service_support import store_config

    cfg = store_config()
    cfg["products"]["gurukul"]["quota"] = {"bytes": 1000, "artifacts": 100}
    cfg["products"]["ai-avatar"]["quota"] = {"bytes": 10**9, "artifacts": 2}
    for e in _env(tmp_path, products=cfg["products"]):
        assert e.put("gurukul", "q/1", b"a" * 900).status_code == 201
        r = e.put("gurukul", "q/2", b"a" * 200)
        assert r.status_code == 507
        assert r.json()["quota"] == {"kind": "bytes", "used": 900, "limit": 1000}
        for i in range(2):
            assert e.put("ai-avatar", f"c/{i}", b"1").status_code == 201
        r = e.put("ai-avatar", "c/9", b"1")
        assert r.status_code == 429
        assert r.json()["quota"] == {"kind": "artifacts", "used": 2, "limit": 2}
        # the storage alert reflects 90 % of the gurukul byte quota
        m = e.c.get("/v1/monitoring/alerts", headers=e.h("admin")).json()["alerts"]
        active = {a["id"]: a for a in m["active"]}
        assert active["quota-bytes:gurukul"]["alert_level"] == "high"
        assert active["quota-artifacts:ai-avatar"]["alert_level"] == "critical"


def test_governance_lock_answers_503_with_the_reason(env: Env) -> None:
    r = env.c.post("/v1/governance/lock", json={"reason": "integrity investigation"},
                   headers=env.h("admin"))
    assert r.status_code == 200 and r.json()["locked"] is True
    r = env.put("gurukul", "g/1", b"1")
    assert r.status_code == 503
    assert r.json()["reason"] == "integrity investigation" and r.headers["retry-after"]
    health = env.c.get("/health").json()
    assert (health["status"], health["writes"]) == ("locked", "refused")
    gov = env.c.get("/v1/governance", headers=env.h("auditor")).json()
    assert gov["locked"] and gov["reason"] == "integrity investigation"
    assert env.c.post("/v1/governance/unlock", json={"reason": "fixed"},
                      headers=env.h("auditor")).status_code == 403
    assert env.c.post("/v1/governance/unlock", json={"reason": "fixed"},
                      headers=env.h("admin")).status_code == 200
    assert env.put("gurukul", "g/1", b"1").status_code == 201
    assert env.c.post("/v1/governance/unlock", json={"reason": "again"},
                      headers=env.h("admin")).status_code == 409


# ------------------------------------------------------------------------- reads
def test_content_ranges_and_conditional_requests(env: Env) -> None:
    data = bytes(range(100))
    assert env.put("gurukul", "r/x", data).status_code == 201
    url = "/v1/products/gurukul/artifacts/r/x"
    h = env.h("reader:gurukul")
    full = env.c.get(url, headers=h)
    assert full.content == data and full.headers["accept-ranges"] == "bytes"
    etag = full.headers["etag"]
    for rng, want, cr in [("bytes=0-9", data[:10], "bytes 0-9/100"),
                          ("bytes=90-", data[90:], "bytes 90-99/100"),
                          ("bytes=-5", data[95:], "bytes 95-99/100"),
                          ("bytes=95-1000", data[95:], "bytes 95-99/100")]:
        r = env.c.get(url, headers={**h, "Range": rng})
        assert r.status_code == 206 and r.content == want and r.headers["content-range"] == cr
    r = env.c.get(url, headers={**h, "Range": "bytes=100-"})
    assert r.status_code == 416 and r.headers["content-range"] == "bytes */100"
    assert env.c.get(url, headers={**h, "Range": "bytes=0-1,5-6"}).status_code == 200
    assert env.c.get(url, headers={**h, "Range": "bytes=0-1", "If-Range": '"other"'}
                     ).status_code == 200
    assert env.c.get(url, headers={**h, "If-None-Match": etag}).status_code == 304
    head = env.c.head(url, headers=h)
    assert head.status_code == 200 and head.headers["content-length"] == "100"
    big = b"0123456789" * 200_000
    assert env.put("gurukul", "r/big", big).status_code == 201
    r = env.c.get("/v1/products/gurukul/artifacts/r/big",
                  headers={**h, "Range": "bytes=1500000-1500009"})
    assert r.status_code == 206 and r.content == big[1_500_000:1_500_010]


def test_listing_filters_and_cursor_pagination(env: Env) -> None:
    for i in range(7):
        meta = json.dumps({"course": "algebra" if i % 2 else "geometry", "n": i})
        assert env.put("gurukul", f"l/{i}", str(i).encode(),
                       **{"Depository-Metadata": meta}).status_code == 201
    assert env.put("gurukul", "other/1", b"o").status_code == 201
    h = env.h("reader:gurukul")
    seen, cursor = [], None
    while True:
        q = "/v1/products/gurukul/artifacts?prefix=l/&limit=3" + (
            f"&cursor={cursor}" if cursor else "")
        page = env.c.get(q, headers=h).json()
        seen += [a["name"] for a in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert seen == [f"l/{i}" for i in range(7)]
    alg = env.c.get("/v1/products/gurukul/artifacts?meta=course%3Dalgebra", headers=h).json()
    assert [a["name"] for a in alg["items"]] == ["l/1", "l/3", "l/5"]
    both = env.c.get("/v1/products/gurukul/artifacts?meta=course%3Dalgebra&meta=n%3D3",
                     headers=h).json()
    assert [a["name"] for a in both["items"]] == ["l/3"]
    assert env.c.get("/v1/products/gurukul/artifacts?since=2999-01-01", headers=h
                     ).json()["items"] == []
    assert len(env.c.get("/v1/products/gurukul/artifacts?until=2999-01-01", headers=h
                         ).json()["items"]) == 8
    for bad, field in [("limit=0", "query:limit"), ("limit=x", "query:limit"),
                       ("since=yesterday", "query:since"), ("meta=novalue", "query:meta"),
                       ("cursor=abc", "query:cursor")]:
        r = env.c.get(f"/v1/products/gurukul/artifacts?{bad}", headers=h)
        assert r.status_code == 400 and r.json()["field"] == field


def test_metadata_by_name_and_id_and_proofs_verify(env: Env) -> None:
    rec = env.put("gurukul", "p/1", b"prove me").json()
    env.store.checkpoint()
    h = env.h("reader:gurukul")
    meta = env.c.get("/v1/products/gurukul/metadata/p/1", headers=h).json()
    assert meta["artifact_id"] == rec["artifact_id"] and meta["holds"] == []
    assert env.c.get(f"/v1/artifacts/{rec['artifact_id']}", headers=h).json() == meta
    proof = env.c.get(f"/v1/artifacts/{rec['artifact_id']}/proof", headers=h).json()
    verify_proof_file(proof["tlog_proof"].encode(), bytes.fromhex(rec["leaf_hash"]),
                      [env.store.verifier_key])
    merkle.verify_inclusion(bytes.fromhex(proof["leaf_hash"]), proof["index"],
                            proof["tree_size"], [B(x) for x in proof["proof"]],
                            B(proof["root"]))
    by_index = env.c.get(f"/v1/log/inclusion?index={rec['log_index']}", headers=h).json()
    assert by_index["proof"] == proof["proof"]
    # a product token cannot prove another product's (or a store-wide) record by index
    assert env.c.get("/v1/log/inclusion?index=0", headers=h).status_code == 404
    assert env.c.get("/v1/log/inclusion?index=0", headers=env.h("auditor")).status_code == 200
    size2 = env.store.latest_checkpoint()[0]
    cons = env.c.get(f"/v1/log/consistency?first=1&second={size2}", headers=h).json()
    merkle.verify_consistency(1, size2, [B(x) for x in cons["proof"]], B(cons["first_root"]),
                              B(cons["second_root"]))
    for bad in ["first=0", "first=5&second=2", f"first=1&second={env.store.size() + 5}",
                "second=3"]:
        assert env.c.get(f"/v1/log/consistency?{bad}", headers=h).status_code == 400


def test_log_entries_and_checkpoint(env: Env) -> None:
    env.put("gurukul", "e/1", b"1")
    env.store.checkpoint()
    r = env.c.get("/v1/log/checkpoint", headers=env.h("reader:gurukul"))
    cp, _ = verify_checkpoint(r.content, [env.store.verifier_key])
    assert r.headers["content-type"].startswith("text/plain") and cp.size == env.store.size()
    ent = env.c.get("/v1/log/entries?start=0&end=3", headers=env.h("auditor")).json()
    assert [e["index"] for e in ent["entries"]] == [0, 1, 2]
    assert json.loads(ent["entries"][0]["leaf"])["type"] == "store.init"
    assert env.c.get("/v1/log/entries", headers=env.h("writer:gurukul")).status_code == 403
    assert env.c.get("/v1/log/entries", headers=env.h("legal:gurukul")).status_code == 403
    assert env.c.get("/v1/log/entries?start=0&end=5000",
                     headers=env.h("admin")).status_code == 400


# ------------------------------------------------------------------------- tiles
def test_tile_paths_parse_and_encode() -> None:
    assert tiles.encode_index(1234067) == "x001/x234/067"
    assert tiles.encode_index(0) == "000"
    assert tiles.parse_tile_path("0/x001/x234/067") == tiles.TileRef(0, 1234067, 256)
    assert tiles.parse_tile_path("2/000.p/7") == tiles.TileRef(2, 0, 7)
    assert tiles.parse_tile_path("entries/x001/002.p/255") == tiles.TileRef(None, 1002, 255)
    for bad in ["0", "01/000", "0/1", "0/x000/001", "0/000.p/0", "0/000.p/256",
                "0/000.p/07", "64/000", "0/001/002", "a/000", "0/x1/000"]:
        with pytest.raises(tiles.TilePathError):
            tiles.parse_tile_path(bad)
    assert tiles.TileRef(1, 0, 17).needed_size() == 17 * 256
    # the spec's example: a tree of 70,000 entries
    assert tiles.available(tiles.TileRef(0, 273, 112), 70_000)
    assert not tiles.available(tiles.TileRef(0, 273, 113), 70_000)
    assert tiles.available(tiles.TileRef(1, 1, 17), 70_000)
    assert tiles.available(tiles.TileRef(2, 0, 1), 70_000)


def test_tiles_rebuild_the_checkpointed_tree(env: Env) -> None:
    futs = [env.store.put_async("gurukul", f"t/{i}", str(i).encode()) for i in range(600)]
    for f in futs:
        f.result()
    env.store.checkpoint()
    size = env.store.latest_checkpoint()[0]
    assert size > 512
    h = env.h("auditor")
    leaf_hashes = [merkle.leaf_hash(leaf) for _, leaf in env.store.log_entries(0, size)]
    # level 0: the leaf hashes, in full and partial tiles
    t0 = env.c.get("/tile/0/000", headers=h)
    assert t0.status_code == 200 and t0.content == b"".join(leaf_hashes[:256])
    assert "immutable" in t0.headers["cache-control"]
    w = size % 256
    t2 = env.c.get(f"/tile/0/002.p/{w}", headers=h).content
    assert t2 == b"".join(leaf_hashes[512:512 + w])
    # level 1: each hash is the root of a full level-0 tile
    t1 = env.c.get("/tile/1/000.p/2", headers=h).content
    assert t1 == merkle.root(leaf_hashes[:256]) + merkle.root(leaf_hashes[256:512])
    # entry bundles carry the leaves themselves, uint16-length-prefixed
    bundle = env.c.get("/tile/entries/001", headers=h).content
    leaves, off = [], 0
    while off < len(bundle):
        n = int.from_bytes(bundle[off:off + 2], "big")
        leaves.append(bundle[off + 2:off + 2 + n])
        off += 2 + n
    assert [merkle.leaf_hash(x) for x in leaves] == leaf_hashes[256:512]
    # a tiles client's root: combine the tiles the checkpoint implies
    cp = parse_checkpoint(env.c.get("/checkpoint", headers=h).content.split(b"\n\n")[0]
                          + b"\n")
    assert cp.size == size and cp.root_hash == merkle.root(leaf_hashes)
    # beyond the checkpoint, malformed, and unauthorised requests
    assert env.c.get("/tile/0/003", headers=h).status_code == 404
    assert env.c.get("/tile/0/0003", headers=h).status_code == 400
    assert env.c.get("/tile/0/000").status_code == 401
    assert env.c.get("/tile/entries/000", headers=env.h("reader:gurukul")).status_code == 403
    assert env.c.get("/tile/0/000", headers=env.h("reader:gurukul")).status_code == 200


def test_public_tiles_option(tmp_path: Path) -> None:
    store = make_store(tmp_path / "s")
    try:
        with TestClient(create_app(store, public_tiles=True)) as c:
            assert c.get("/checkpoint").status_code == 200
            assert c.get("/tile/0/000.p/1").status_code == 200
            assert c.get("/tile/entries/000.p/1").status_code == 401
            assert c.get("/v1/log/checkpoint").status_code == 401
    finally:
        store.close()


# --------------------------------------------------------------- roles and tokens
def test_roles(env: Env) -> None:
    env.put("gurukul", "r/1", b"1")
    url = "/v1/products/gurukul/artifacts/r/1"
    assert env.c.get(url, headers=env.h("reader:gurukul")).status_code == 200
    assert env.c.get(url, headers=env.h("legal:gurukul")).status_code == 200
    assert env.c.get(url, headers=env.h("legal")).status_code == 200
    for who in ("auditor", "admin"):
        r = env.c.get(url, headers=env.h(who))
        assert r.status_code == 403 and r.json()["type"] == "/problems/forbidden"
        assert env.c.get("/v1/products/gurukul/metadata/r/1", headers=env.h(who)
                         ).status_code == 200
    for who in ("reader:gurukul", "auditor", "legal", "admin"):
        assert env.put("gurukul", "r/2", b"2", who=who).status_code == 403
    assert env.c.get("/v1/tokens", headers=env.h("auditor")).status_code == 403
    assert env.c.get("/metrics", headers=env.h("legal")).status_code == 403
    assert env.c.get("/v1/whoami").status_code == 401
    r = env.c.get("/v1/whoami", headers={"Authorization": "Bearer nope"})
    assert r.status_code == 401 and r.headers["www-authenticate"].startswith("Bearer")
    assert env.c.get("/v1/whoami", headers={"Authorization": "Basic abc"}).status_code == 401


def test_tokens_created_and_revoked_over_http(env: Env) -> None:
    r = env.c.post("/v1/tokens", json={"role": "reader", "product": "gurukul", "note": "n"},
                   headers=env.h("admin"))
    assert r.status_code == 201
    tok = r.json()
    who = env.c.get("/v1/whoami", headers=bearer(tok["secret"])).json()
    assert who == {"token_id": tok["token_id"], "role": "reader", "product": "gurukul",
                   "expires": None}
    assert env.c.post(f"/v1/tokens/{tok['token_id']}/revoke", json={"reason": "rotate"},
                      headers=env.h("admin")).status_code == 200
    assert env.c.get("/v1/whoami", headers=bearer(tok["secret"])).status_code == 401
    assert env.c.post(f"/v1/tokens/{tok['token_id']}/revoke", json={"reason": "again"},
                      headers=env.h("admin")).status_code == 409
    assert env.c.post("/v1/tokens/tok-999999/revoke", json={"reason": "x"},
                      headers=env.h("admin")).status_code == 404
    for body, field in [({"role": "god"}, "body:role"), ({"role": "reader"}, "body"),
                        ({"role": "reader", "product": "nope"}, "body:product"),
                        ({"role": "admin", "expires": "2000-01-01"}, "body")]:
        r = env.c.post("/v1/tokens", json=body, headers=env.h("admin"))
        assert r.status_code == 400 and r.json()["field"] == field, r.text
    listed = env.c.get("/v1/tokens", headers=env.h("admin")).json()["tokens"]
    assert all("secret" not in t for t in listed)


def test_revoke_through_the_store_beats_the_auth_cache(env: Env) -> None:
    """The cache is warm (long TTL), the token is revoked by a direct store call (not a
    service route, so no invalidate()): the very next request is refused."""
    from depository.service._auth import Authenticator

    secret, tok = env.store.create_token(role="writer", product="gurukul", actor="t")
    auth = Authenticator(env.store, lambda: datetime.now(UTC), ttl=3600)
    assert auth.authenticate(f"Bearer {secret}").token.id == tok.id
    assert auth.authenticate(f"Bearer {secret}").token.id == tok.id  # from the cache
    env.store.revoke_token(tok.id, reason="leaked", actor="t")
    with pytest.raises(Problem) as exc:
        auth.authenticate(f"Bearer {secret}")
    assert exc.value.code == 401
    # The same over HTTP, after warming the app's own cache with uploads.
    secret, tok = env.store.create_token(role="writer", product="gurukul", actor="t")
    for i in range(3):
        assert env.c.put(f"/v1/products/gurukul/artifacts/rv/{i}", content=b"x",
                         headers=bearer(secret)).status_code == 201
    env.store.revoke_token(tok.id, reason="leaked", actor="t")
    r = env.c.put("/v1/products/gurukul/artifacts/rv/after", content=b"x",
                  headers=bearer(secret))
    assert r.status_code == 401
    assert env.c.get("/v1/products/gurukul/metadata/rv/after",
                     headers=env.h("reader:gurukul")).status_code == 404


def test_auth_cache_entry_from_before_a_revocation_is_not_used(env: Env) -> None:
    """A lookup that raced a revocation (read the row before it committed) caches an
    entry under the generation read before the lookup, which the revocation ends."""
    from depository.service._auth import Authenticator

    secret, tok = env.store.create_token(role="reader", product="gurukul", actor="t")
    auth = Authenticator(env.store, lambda: datetime.now(UTC), ttl=3600)
    real = env.store.authenticate

    def racing(sec: str, now: datetime) -> Any:
        found = real(sec, now)  # still valid here...
        env.store.revoke_token(tok.id, reason="race", actor="t")  # ...revoked meanwhile
        return found

    env.store.authenticate = racing  # type: ignore[method-assign]
    try:
        auth.authenticate(f"Bearer {secret}")  # answered from the stale row, once
    finally:
        env.store.authenticate = real  # type: ignore[method-assign]
    with pytest.raises(Problem):
        auth.authenticate(f"Bearer {secret}")


def test_stalled_small_upload_times_out(tmp_path: Path) -> None:
    """The idle watchdog: a body that stops arriving is abandoned (408) and nothing is
    stored; one that keeps coming slowly is not."""
    import asyncio

    store = make_store(tmp_path / "s")
    secret = store.create_token(role="writer", product="gurukul", actor="t")[0]
    app = create_app(store, upload_idle_timeout=0.3)

    async def call(name: str, parts: list[tuple[float, bytes, bool]]) -> tuple[int, bytes]:
        sent: list[Any] = []
        queue = list(parts)

        async def receive() -> Any:
            if not queue:
                await asyncio.sleep(3600)
            delay, body, more = queue.pop(0)
            await asyncio.sleep(delay)
            return {"type": "http.request", "body": body, "more_body": more}

        async def send(msg: Any) -> None:
            sent.append(msg)

        scope = {"type": "http", "method": "PUT",
                 "path": f"/v1/products/gurukul/artifacts/{name}",
                 "headers": [(b"authorization", f"Bearer {secret}".encode())],
                 "query_string": b""}
        await app(scope, receive, send)
        return sent[0]["status"], sent[1]["body"]

    async def main() -> None:
        status, body = await call("s1", [(0, b"a" * 10, True)])  # then silence
        assert status == 408 and b"upload-timeout" in body
        slow = [(0.15, b"b" * 100, True)] * 6 + [(0.15, b"c", False)]  # 1 s in total
        status, body = await call("s2", slow)
        assert status == 201, body

    asyncio.run(main())
    assert store.get("gurukul", "s2").size == 601
    with pytest.raises(NotFoundError):
        store.get("gurukul", "s1")
    store.close()


def test_expired_token_is_401(tmp_path: Path) -> None:
    from datetime import UTC, datetime, timedelta

    now = [datetime(2030, 1, 1, tzinfo=UTC)]
    store = make_store(tmp_path / "s")
    secret, _ = store.create_token(role="reader", product="gurukul", actor="t",
                                   expires=datetime.now(UTC) + timedelta(days=3650))
    try:
        with TestClient(create_app(store, clock=lambda: now[0])) as c:
            assert c.get("/v1/whoami", headers=bearer(secret)).status_code == 200
            now[0] = datetime.now(UTC) + timedelta(days=3651)
            r = c.get("/v1/whoami", headers=bearer(secret))
            assert r.status_code == 401 and r.json()["type"] == "/problems/unauthorized"
    finally:
        store.close()


# ----------------------------------------------------------------- holds, retention
def test_holds_and_retention_over_http(env: Env) -> None:
    rec = env.put("gurukul", "h/1", b"held").json()
    aid = rec["artifact_id"]
    r = env.c.post("/v1/holds", json={"matter": "M-1", "reason": "litigation",
                                      "artifact_ids": [aid]}, headers=env.h("legal:gurukul"))
    assert r.status_code == 201
    hold = r.json()
    assert env.c.get("/v1/products/gurukul/metadata/h/1", headers=env.h("reader:gurukul")
                     ).json()["holds"] == [hold["hold_id"]]
    r = env.c.post("/v1/holds", json={"matter": "M-2", "reason": "audit",
                                      "product": "gurukul", "from": "2020-01-01"},
                   headers=env.h("admin"))
    assert r.status_code == 201 and r.json()["scope"]["from"].startswith("2020-01-01")
    assert len(env.c.get("/v1/holds", headers=env.h("auditor")).json()["holds"]) == 2
    assert env.c.post("/v1/holds", json={"matter": "M", "reason": "r"},
                      headers=env.h("legal")).status_code == 400
    assert env.c.post("/v1/holds", json={"matter": "", "reason": "r", "product": "gurukul"},
                      headers=env.h("legal")).json()["field"] == "body:matter"
    assert env.c.post("/v1/holds", content=b"{bad", headers=env.h("legal")).status_code == 400
    assert env.c.post("/v1/holds", json={"matter": "M", "reason": "r", "product": "gurukul"},
                      headers=env.h("reader:gurukul")).status_code == 403
    rel = env.c.post(f"/v1/holds/{hold['hold_id']}/release", json={"reason": "settled"},
                     headers=env.h("legal"))
    assert rel.status_code == 200
    assert env.c.post(f"/v1/holds/{hold['hold_id']}/release", json={"reason": "again"},
                      headers=env.h("legal")).status_code == 409
    r = env.c.post(f"/v1/artifacts/{aid}/retention",
                   json={"until": "2099-01-01", "reason": "regulator"}, headers=env.h("legal"))
    assert r.status_code == 200 and r.json()["retain_until"].startswith("2099-01-01")
    r = env.c.post(f"/v1/artifacts/{aid}/retention",
                   json={"until": "2050-01-01", "reason": "shorten"}, headers=env.h("admin"))
    assert r.status_code == 409 and r.json()["type"] == "/problems/retention-refused"
    assert env.store.record(env.store.size() - 1).type == "retention.refused"


# ----------------------------------------------------------------- isolation drill
def test_isolation_drill(env: Env) -> None:
    """Tokens of every product and role: every cross-product read, list, proof-by-artifact
    and hold attempt is refused with the answer a missing artifact gets, and nothing about
    another product's artifacts (names, counts, sizes) reaches that token."""
    secret_names = {}
    for p in PRODUCTS:
        name = f"secret-{p}/report.pdf"
        rec = env.put(p, name, f"confidential {p} data of some size".encode() * 3,
                      **{"Depository-Metadata": json.dumps({"codename": f"cn-{p}"})})
        assert rec.status_code == 201
        secret_names[p] = (name, rec.json()["artifact_id"])
    env.store.checkpoint()

    def leaks(text: str, own: str) -> list[str]:
        return [w for p, (name, aid) in secret_names.items() if p != own
                for w in (name, aid, f"cn-{p}") if w in text]

    for own in PRODUCTS:
        for role in ("writer", "reader", "legal"):
            h = env.h(f"{role}:{own}")
            for other in PRODUCTS:
                if other == own:
                    continue
                name, aid = secret_names[other]
                missing = f"secret-{other}/no-such.pdf"
                attempts = {
                    "content": (f"/v1/products/{other}/artifacts/{name}",
                                f"/v1/products/{other}/artifacts/{missing}"),
                    "metadata": (f"/v1/products/{other}/metadata/{name}",
                                 f"/v1/products/{other}/metadata/{missing}"),
                    "by-id": (f"/v1/artifacts/{aid}", "/v1/artifacts/art_" + "a" * 24),
                    "proof": (f"/v1/artifacts/{aid}/proof",
                              "/v1/artifacts/art_" + "a" * 24 + "/proof"),
                }
                for what, (real, fake) in attempts.items():
                    a, b = env.c.get(real, headers=h), env.c.get(fake, headers=h)
                    assert a.status_code == b.status_code == 404, (role, own, what)
                    # identical once the identifier the caller sent is blanked out
                    ta = a.text.replace(name, "X").replace(aid, "X")
                    tb = b.text.replace(missing, "X").replace("art_" + "a" * 24, "X")
                    assert ta == tb, (role, what, ta, tb)
                    assert leaks(ta, own) == [], (role, what)
                lst = env.c.get(f"/v1/products/{other}/artifacts", headers=h)
                nonexistent = env.c.get("/v1/products/no-such-product/artifacts", headers=h)
                assert lst.status_code == nonexistent.status_code == 404
                assert lst.json()["type"] == nonexistent.json()["type"]
                assert leaks(lst.text, own) == []
                up = env.put(other, "x", b"1", who=f"{role}:{own}")
                assert up.status_code == 404
                hold = env.c.post("/v1/holds", json={"matter": "m", "reason": "r",
                                                     "artifact_ids": [aid]}, headers=h)
                assert hold.status_code in (403, 404), role
                if role == "legal":
                    assert hold.status_code == 404
                    ph = env.c.post("/v1/holds", json={"matter": "m", "reason": "r",
                                                       "product": other}, headers=h)
                    assert ph.status_code == 404
            # own listing: only own artifacts; metrics and monitoring are refused
            own_list = env.c.get(f"/v1/products/{own}/artifacts", headers=h)
            assert own_list.status_code == 200 and leaks(own_list.text, own) == []
            for url in ("/metrics", "/v1/monitoring", "/v1/monitoring/storage",
                        "/v1/log/entries", "/tile/entries/000.p/1", "/v1/tokens",
                        "/v1/governance"):
                r = env.c.get(url, headers=h)
                assert r.status_code == 403 and leaks(r.text, own) == [], (url, role)
            holds = env.c.get("/v1/holds", headers=h)
            assert holds.status_code in (200, 403) and leaks(holds.text, own) == []
            # proofs by index: only own product's records
            for other, (_, aid) in secret_names.items():
                idx = env.store.get_by_id(aid).log_index
                r = env.c.get(f"/v1/log/inclusion?index={idx}", headers=h)
                assert r.status_code == (200 if other == own else 404)


# -------------------------------------------------------------------- monitoring
def test_alert_levels_and_escalation() -> None:
    levels = (70, 85, 95)
    assert [alert_level(p, levels) for p in (None, 0, 69.9, 70, 84, 85, 95, 130)] == [
        0, 0, 0, 1, 1, 2, 3, 3]
    assert [level_name(i, 3) for i in range(4)] == ["ok", "warning", "high", "critical"]
    assert level_name(1, 1) == "critical" and level_name(1, 2) == "high"


def test_scale_status_is_computed_from_figures_and_config() -> None:
    cfg = parse_config({"origin": "x.example/log", "products": {"p": {}},
                        "scale_limits": {"artifact-count": {"target": 1000}}})
    fig = Figures(largest_artifact=450_000_000, storage_bytes=10**12 * 9 // 10,
                  concurrent_writes=50, writes_per_second=1200.0, artifact_count=960,
                  query_p99_seconds=0.5, log_size=12345,
                  oldest_record_time="2026-01-01T00:00:00.000000Z")
    st = {s["id"]: s for s in scale_status(fig, cfg)}
    assert list(st) == ["artifact-size", "total-storage", "concurrent-writers",
                        "write-throughput", "artifact-count", "query-response", "audit-trail"]
    assert st["artifact-size"]["percent"] == 90.0 and st["artifact-size"]["alert_level"] == \
        "high"
    assert st["total-storage"]["alert_level"] == "high"
    assert st["concurrent-writers"]["percent"] == 50.0 and st["concurrent-writers"][
        "alert_level"] == "ok"
    assert st["write-throughput"]["alert_level"] == "critical"
    assert st["artifact-count"]["threshold"] == 1000 and st["artifact-count"]["level"] == 3
    assert st["query-response"]["percent"] == 10.0
    assert st["audit-trail"]["percent"] is None and st["audit-trail"]["current"] == 12345
    assert st["audit-trail"]["retention_years"] == 7
    assert "page" in st["total-storage"]["escalation"]


def test_storage_alerts_and_tracker_history() -> None:
    cfg = parse_config({"origin": "x.example/log", "products": {
        "a": {"quota": {"bytes": 100, "artifacts": 10}}, "b": {}}})
    cands = storage_alerts({"a": (71, 10), "b": (0, 0)}, cfg, (96, 100))
    by = {c["id"]: c for c in cands}
    assert by["quota-bytes:a"]["alert_level"] == "warning"
    assert by["quota-artifacts:a"]["alert_level"] == "critical"
    assert by["disk"]["alert_level"] == "critical" and by["quota-bytes:b"]["level"] == 0
    tr = AlertTracker(n_levels=3)
    tr.evaluate(cands, "t1")
    tr.evaluate(storage_alerts({"a": (90, 5)}, cfg, (50, 100)), "t2")
    snap = tr.snapshot()
    assert {a["id"]: a["alert_level"] for a in snap["active"]} == {"quota-bytes:a": "high"}
    assert snap["active"][0]["since"] == "t1"
    moves = [(h["id"], h["from"], h["to"], h["time"]) for h in snap["history"]]
    assert ("quota-bytes:a", "warning", "high", "t2") in moves
    assert ("disk", "critical", "ok", "t2") in moves


def test_rate_and_latency_windows() -> None:
    w = RateWindow(60)
    for t in range(100, 110):
        w.add(t + 0.5, 10, 1000)
    w.note_level(105.2, 7)
    assert w.rate(109.9, 10) == 10.0 and w.byte_rate(109.9, 10) == 1000.0
    assert w.rate(200.0, 10) == 0.0 and w.peak(109.9) == 7
    lat = LatencyWindow()
    for i in range(100):
        lat.add(10.0, i / 1000)
    p = lat.percentiles(20.0, 60)
    assert p["count"] == 100 and p["p50"] == 0.05 and p["p99"] == 0.099
    assert lat.percentiles(100.0, 60)["count"] == 0


def test_monitoring_views_and_metrics(env: Env) -> None:
    for i in range(3):
        env.put("gurukul", f"mon/{i}", b"x" * (i + 1))
    env.c.get("/v1/products/gurukul/artifacts", headers=env.h("reader:gurukul"))
    m = env.c.get("/v1/monitoring", headers=env.h("auditor"))
    assert m.status_code == 200
    v = m.json()
    assert v["storage"]["products"]["gurukul"] == {**v["storage"]["products"]["gurukul"],
                                                   "bytes": 6, "artifacts": 3}
    assert v["throughput"]["writes_per_second_10s"] > 0
    assert v["queries"]["count"] >= 1
    assert v["certification"]["status"] == "none"
    assert next(s["id"] for s in v["scale"]["limits"]) == "artifact-size"
    assert env.c.get("/v1/monitoring/nope", headers=env.h("admin")).status_code == 404
    text = env.c.get("/metrics", headers=env.h("admin")).text
    for name in ("depository_writes_total{", "depository_write_bytes_total{",
                 "depository_http_request_duration_seconds_bucket{",
                 "depository_writer_queue_depth", "depository_log_size",
                 'depository_storage_bytes{product="gurukul"} 6.0', "depository_alerts_active"):
        assert name in text, name


def test_service_metrics_match_prometheus_client() -> None:
    """The plain-number metrics expose exactly what prometheus_client's own instruments
    would for the same observations (bucket edges included), _created aside."""
    import random

    from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

    from depository.service._monitoring import _LATENCY_BUCKETS

    ours = ServiceMetrics()
    reg = CollectorRegistry(auto_describe=True)
    req = Counter("depository_http_requests", "HTTP requests answered",
                  ["route", "method", "status"], registry=reg)
    lat = Histogram("depository_http_request_duration_seconds",
                    "HTTP request latency by route", ["route"], buckets=_LATENCY_BUCKETS,
                    registry=reg)
    wr = Counter("depository_writes", "Artifact uploads by result", ["product", "result"],
                 registry=reg)
    wb = Counter("depository_write_bytes", "Bytes of newly stored artifacts", ["product"],
                 registry=reg)
    rng = random.Random(4)
    edges = [*_LATENCY_BUCKETS, 0.0, 1e9]
    for _ in range(2000):
        route = rng.choice(["PUT /a", "GET /b", "(unmatched)"])
        status = rng.choice([200, 201, 404])
        secs = rng.choice(edges) if rng.random() < 0.3 else rng.expovariate(20)
        ours.observe_request(route, "PUT", status, secs)
        req.labels(route, "PUT", str(status)).inc()
        lat.labels(route).observe(secs)
        product, result = rng.choice(["g", "e"]), rng.choice(["created", "duplicate"])
        n = rng.randrange(10_000)
        ours.observe_write(product, result, n)
        wr.labels(product, result).inc()
        if result == "created":
            wb.labels(product).inc(n)

    def lines(r: CollectorRegistry) -> list[str]:
        text = generate_latest(r).decode()
        return sorted(x for x in text.splitlines() if "_created" not in x)

    assert lines(ours.registry) == lines(reg)

    def created(r: CollectorRegistry) -> list[str]:  # the series, not their timestamps
        text = generate_latest(r).decode()
        return sorted(x.rsplit(" ", 1)[0] for x in text.splitlines() if "_created{" in x)

    assert created(ours.registry) == created(reg) and created(reg)


def test_certification_status_reads_the_log(env: Env) -> None:
    env.store.append_event("certification.run", actor="certifier", product=None,
                           body={"report_id": "cert-1"})
    v = env.c.get("/v1/monitoring/certification", headers=env.h("admin")).json()
    # A run record is written before the checks: it alone carries no verdict.
    assert v["certification"]["status"] == "no verdict"
    assert v["certification"]["last"]["body"] == {"report_id": "cert-1"}
    assert v["certification"]["verdict"] is None
    until = (datetime.now(UTC) + timedelta(days=30)).date().isoformat()
    env.store.append_event("certification.result", actor="certifier", product=None,
                           body={"report_id": "cert-1", "verdict": "pass",
                                 "valid_from": "2026-01-01", "valid_until": until})
    v = env.c.get("/v1/monitoring/certification", headers=env.h("admin")).json()["certification"]
    assert v["status"] == "certified" and v["verdict"] == "pass"
    assert v["valid_until"] == until and v["days_left"] == 30


def test_problem_types_are_documented_and_routes_answer_problems(env: Env) -> None:
    idx = env.c.get("/problems/index").json()
    assert {t["type"] for t in idx} >= {"/problems/write-once", "/problems/quota-storage"}
    assert env.c.get("/problems/write-once").json()["status"] == 409
    assert env.c.get("/problems/nope").status_code == 404
    r = env.c.get("/no/such/route")
    assert r.status_code == 404 and r.headers["content-type"] == "application/problem+json"
    r = env.c.delete("/v1/tokens", headers=env.h("admin"))
    assert r.status_code == 405 and r.json()["type"] == "/problems/method-not-allowed"
    assert env.c.get("/health").json()["status"] == "ok"
    assert env.c.get("/openapi.json").json()["openapi"] == "3.1.0"
