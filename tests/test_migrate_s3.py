"""``depository migrate`` of a store whose bytes are in S3 Object Lock (the suite's Ceph
RGW) into PostgreSQL (tests/_pg.py), and back: the objects stay in the bucket, the new
store points at them, and every replay re-hashes them there. A new version written over
an object through the S3 API (as someone with bucket write access could) changes
nothing: the store and every replay read the locked version the record names."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from _pg import PgDatabase, pg_db, pg_server
from click.testing import CliRunner
from conftest import Clock
from conftest_s3 import S3Env, ceph, s3
from test_migrate import ORIGIN, table_rows

from depository.cli import main
from depository.store import Store
from depository.store.config import default_config_dict
from depository.store.migrate import migrate

__all__ = ["ceph", "pg_db", "pg_server", "s3"]


def test_s3_backed_store_moves_to_postgresql_and_back(tmp_path: Path, s3: S3Env,
                                                      pg_db: PgDatabase) -> None:
    from datetime import UTC, datetime

    prefix = f"mig-{hashlib.sha256(str(tmp_path).encode()).hexdigest()[:12]}/"
    cfg = s3.config(default_config_dict(ORIGIN), prefix=prefix)
    src = tmp_path / "src"
    s = Store.init(src, config=cfg, clock=Clock(datetime(2026, 3, 1, tzinfo=UTC)))
    vkey = s.verifier_key
    try:
        for i in range(3):
            s.put("gurukul", f"lessons/l{i}.txt", f"lesson {i}".encode() * 50)
        s.place_hold(matter="M-1", reason="inquiry", actor="legal", product="gurukul")
        s.checkpoint()
        size = s.size()
    finally:
        s.close()
    pg_dir = tmp_path / "pg"
    report = migrate(src, pg_dir, to_engine="postgresql", dsn=pg_db.service_dsn,
                     admin_dsn=pg_db.owner_dsn, trusted_keys=[vkey])
    assert report.verified and report.blobs == 0  # nothing copied: the bytes stay in S3
    assert s3.bucket in (pg_dir / "depository.yaml").read_text()
    with Store.open(pg_dir, readonly=True) as p:
        assert p.size() == size
        art = p.get("gurukul", "lessons/l1.txt")
        with p.open_content(art) as f:
            assert f.read() == b"lesson 1" * 50
    key = tmp_path / "log.vkey"
    key.write_text(vkey + "\n")
    out = CliRunner().invoke(main, ["verify", "store", str(pg_dir), "--key", str(key),
                                    "--json"])
    assert out.exit_code == 0, out.output
    assert json.loads(out.stdout)["blobs_checked"] == 3  # re-hashed in the bucket
    back = tmp_path / "back"
    migrate(pg_dir, back, trusted_keys=[vkey])
    assert table_rows(back / "depository.db") == table_rows(src / "depository.db")
    # A new, unlocked version of one object with other bytes: the latest version now
    # differs, but the store and the replay read the locked one the record names.
    s3.client.put_object(Bucket=s3.bucket, Key=f"{prefix}objects/{art.sha256}",
                         Body=b"forged")
    again = migrate(pg_dir, tmp_path / "again", trusted_keys=[vkey])
    assert again.verified
    with Store.open(tmp_path / "again", readonly=True) as a, \
            a.open_content(a.get("gurukul", "lessons/l1.txt")) as f:
        assert f.read() == b"lesson 1" * 50
