"""The HTTP API over a PostgreSQL-backed store (tests/_pg.py; ADR 0013): uploads,
reads, proofs, tiles and the monitoring figures run the same code as on SQLite."""

from __future__ import annotations

import hashlib
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _pg import PgDatabase, pg_db, pg_server
from test_service_support import bearer, issue_tokens, store_config

from depository.service import create_app
from depository.store import Store
from depository.tlog.checkpoint import verify_proof_file

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    from starlette.testclient import TestClient

__all__ = ["pg_db", "pg_server"]
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.fixture
def api(tmp_path: Path, pg_db: PgDatabase) -> Iterator[tuple[Store, Any, dict[str, str]]]:
    cfg = store_config()
    cfg["engine"] = {"type": "postgresql", "dsn": pg_db.service_dsn}
    store = Store.init(tmp_path / "store", config=cfg, admin_dsn=pg_db.owner_dsn)
    secrets = issue_tokens(store)
    with TestClient(create_app(store), raise_server_exceptions=False) as client:
        yield store, client, secrets
    store.close()


def test_upload_read_proof_tiles_and_usage(api: tuple[Store, Any, dict[str, str]]) -> None:
    store, c, s = api
    w = bearer(s["writer:gurukul"])
    r = c.put("/v1/products/gurukul/artifacts/l/1.txt?wait=checkpoint", content=b"lesson",
              headers={**w, "Depository-Metadata": '{"course": "algebra"}'})
    assert r.status_code == 201, r.text
    rec = r.json()
    cp = verify_proof_file(rec["tlog_proof"].encode(), bytes.fromhex(rec["leaf_hash"]),
                           [store.verifier_key])
    assert cp.size > rec["log_index"]
    assert c.put("/v1/products/gurukul/artifacts/l/1.txt", content=b"other",
                 headers=w).status_code == 409
    got = c.get("/v1/products/gurukul/artifacts/l/1.txt", headers=bearer(s["reader:gurukul"]))
    assert got.status_code == 200 and got.content == b"lesson"
    # Another product's reader does not see it.
    assert c.get("/v1/products/gurukul/artifacts/l/1.txt",
                 headers=bearer(s["reader:ai-avatar"])).status_code in (403, 404)
    ls = c.get("/v1/products/gurukul/artifacts?meta.course=algebra",
               headers=bearer(s["reader:gurukul"]))
    assert ls.status_code == 200 and "l/1.txt" in ls.text, ls.text
    proof = c.get(f"/v1/artifacts/{rec['artifact_id']}/proof",
                  headers=bearer(s["reader:gurukul"]))
    assert proof.status_code == 200, proof.text
    aud = bearer(s["auditor"])
    assert c.get("/checkpoint", headers=aud).status_code == 200
    store.checkpoint()
    size = store.latest_checkpoint()[0]  # tiles are served up to the signed checkpoint
    tile = c.get(f"/tile/0/000.p/{size}" if size < 256 else "/tile/0/000", headers=aud)
    assert tile.status_code == 200, tile.text
    assert len(tile.content) == 32 * min(size, 256)
    assert tile.content[32 * rec["log_index"]:32 * rec["log_index"] + 32] == bytes.fromhex(
        rec["leaf_hash"])
    metrics = c.get("/metrics", headers=bearer(s["admin"]))
    assert metrics.status_code == 200
    assert hashlib.sha256(b"lesson").hexdigest() == rec["sha256"]
    mon = c.get("/v1/monitoring", headers=bearer(s["admin"]))
    assert mon.status_code == 200, mon.text
