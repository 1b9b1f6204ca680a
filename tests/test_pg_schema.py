"""The PostgreSQL schema on a real server (tests/_pg.py): the same tables as SQLite, and
WORM enforced by triggers and by the service role's privileges (ADR 0013)."""

from __future__ import annotations

import sqlite3
from typing import Any

import psycopg
import pytest
from _pg import SERVICE, PgDatabase, pg_db, pg_server

from depository.store import _pg, _pg_schema, _schema

__all__ = ["pg_db", "pg_server"]

WORM, PRIVILEGE = "23001", "42501"


def _create(db: PgDatabase) -> None:
    _pg.create_database(db.owner_dsn, db.service_dsn, origin="example.org/log",
                        verifier_key="example.org/log+00000000+AAAA")


def _seed(db: PgDatabase) -> None:
    """One row in every table (as the service role), two artifacts with inline bytes."""
    with db.connect(user=SERVICE) as c:
        c.execute("SET search_path = depository")
        h = b"\x01" * 32
        c.execute("INSERT INTO log VALUES (1, 'x', %s), (2, 'y', %s)", (h, h))
        c.execute("INSERT INTO node VALUES (1, 0, %s)", (h,))
        c.execute("INSERT INTO checkpoint VALUES (2, %s, 'note', 't')", (h,))
        for i in (1, 2):
            c.execute("INSERT INTO artifact VALUES (%s, %s, 'p', %s, 'sha', 1, 'm', '{}', "
                      "'{}', 'r', 'inline', 'a', 'c')", (i, f"id{i}", f"n{i}"))
            c.execute("INSERT INTO inline_blob VALUES (%s, 'b')", (i,))
        c.execute("INSERT INTO artifact_meta VALUES ('p', 'k', 'v', 1)")
        c.execute("INSERT INTO retention VALUES (3, 'id1', 'r2')")
        c.execute("INSERT INTO hold VALUES ('h', 'm', 'r', 'a', 'p', '{}', 4, 't')")
        c.execute("INSERT INTO hold_release VALUES ('h', 'r', 'a', 5, 't')")
        c.execute("INSERT INTO disposal VALUES ('id2', 'sha', 6, 't')")
        c.execute("INSERT INTO token VALUES ('t', 'admin', NULL, NULL, 's', '', 'a', 7, 't')")
        c.execute("INSERT INTO token_revoke VALUES ('t', 'r', 'a', 8, 't')")
        c.execute("INSERT INTO governance VALUES (9, 'locked', 'r', 'a', 't')")


def _refused(conn: Any, sql: str) -> str:
    with pytest.raises(psycopg.Error) as info:
        conn.execute(sql)
    return str(info.value.sqlstate)


def test_same_tables_and_columns_as_sqlite(pg_db: PgDatabase) -> None:
    _create(pg_db)
    lite = sqlite3.connect(":memory:")
    _schema.create(lite)
    with pg_db.connect() as c:
        for table in _pg_schema.TABLE_NAMES:
            want = [(r[1], bool(r[3]) or bool(r[5])) for r in
                    lite.execute(f"PRAGMA table_info({table})")]
            got = [(r[0], r[1]) for r in c.execute(
                "SELECT column_name, is_nullable = 'NO' FROM information_schema.columns "
                "WHERE table_schema = 'depository' AND table_name = %s "
                "ORDER BY ordinal_position", (table,))]
            assert got == want, table
            types = {r[0] for r in c.execute(
                "SELECT data_type FROM information_schema.columns WHERE table_schema = "
                "'depository' AND table_name = %s", (table,))}
            assert types <= {"bigint", "bytea", "text"}, table
        tables = {r[0] for r in c.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'depository'")}
        assert tables == set(_pg_schema.TABLE_NAMES) | set(_pg_schema.CLUSTER_TABLE_NAMES)
        tables -= set(_pg_schema.CLUSTER_TABLE_NAMES)  # PostgreSQL only (ADR 0014)
        sqlite_tables = {r[0] for r in lite.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table'")}
        assert tables == sqlite_tables


def test_service_role_cannot_update_delete_or_truncate(pg_db: PgDatabase) -> None:
    _create(pg_db)
    _seed(pg_db)
    with pg_db.connect(user=SERVICE) as c:
        c.execute("SET search_path = depository")
        for table in _pg_schema.TABLE_NAMES:
            col = "log_idx" if table == "inline_blob" else None
            if col is None:
                assert _refused(c, f"UPDATE {table} SET {_first_col(c, table)} = "
                                   f"{_first_col(c, table)}") == PRIVILEGE, table
                assert _refused(c, f"DELETE FROM {table}") == PRIVILEGE, table
            assert _refused(c, f"TRUNCATE {table}") == PRIVILEGE, table
        assert _refused(c, "UPDATE inline_blob SET data = 'z'") == PRIVILEGE
        # DELETE on inline_blob is granted; the trigger allows only a disposed artifact's.
        assert _refused(c, "DELETE FROM inline_blob WHERE log_idx = 1") == WORM
        assert c.execute("DELETE FROM inline_blob WHERE log_idx = 2").rowcount == 1
        # Nor can it alter the guards.
        for sql in ("ALTER TABLE log DISABLE TRIGGER log_no_change",
                    "ALTER TABLE log DISABLE TRIGGER ALL",
                    "DROP TRIGGER log_no_change ON log", "DROP TABLE log",
                    "ALTER TABLE log OWNER TO depository_service",
                    "CREATE OR REPLACE FUNCTION depository.refuse_change() RETURNS trigger "
                    "LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$",
                    "SET session_replication_role = replica",
                    "CREATE TABLE depository.extra (x int)"):
            assert _refused(c, sql) == PRIVILEGE, sql
        c.execute("GRANT UPDATE ON log TO depository_service")  # a warning, granting nothing
        assert not c.execute("SELECT has_table_privilege('depository.log', 'UPDATE')"
                             ).fetchone()[0]
        c.execute("SET search_path = depository")
        assert c.execute("SELECT count(*) FROM log").fetchone()[0] == 2


def test_triggers_refuse_even_the_owner(pg_db: PgDatabase) -> None:
    """The owner holds every privilege; the triggers still refuse (as they would the
    service role, were it ever granted UPDATE or DELETE)."""
    _create(pg_db)
    _seed(pg_db)
    with pg_db.connect(user="depository_owner") as c:
        c.execute("SET search_path = depository")
        for table in _schema.APPEND_ONLY_TABLES:
            col = _first_col(c, table)
            assert _refused(c, f"UPDATE {table} SET {col} = {col}") == WORM, table
            assert _refused(c, f"DELETE FROM {table}") == WORM, table
            assert _refused(c, f"TRUNCATE {table} CASCADE") == WORM, table
        assert _refused(c, "UPDATE inline_blob SET data = 'z'") == WORM
        assert _refused(c, "TRUNCATE inline_blob") == WORM
        with pytest.raises(psycopg.Error, match="depository: log rows are write-once"):
            c.execute("UPDATE log SET leaf = 'forged' WHERE idx = 1")
        assert c.execute("SELECT leaf FROM log WHERE idx = 1").fetchone()[0] == b"x"


def test_fingerprint_sees_a_disabled_trigger_and_a_grant(pg_db: PgDatabase) -> None:
    _create(pg_db)
    with pg_db.connect() as c:
        c.execute("SET search_path = depository, pg_temp")
        frozen = c.execute("SELECT value FROM meta WHERE key = %s",
                           (_pg_schema.PG_FINGERPRINT_KEY,)).fetchone()[0]
        assert _pg_schema.fingerprint(c) == frozen
        c.execute("ALTER TABLE log DISABLE TRIGGER log_no_change")
        assert _pg_schema.fingerprint(c) != frozen
        c.execute("ALTER TABLE log ENABLE TRIGGER log_no_change")
        assert _pg_schema.fingerprint(c) == frozen
        c.execute("GRANT UPDATE ON log TO depository_service")
        assert _pg_schema.fingerprint(c) != frozen


def test_service_role_must_exist_own_nothing_and_schema_is_created_once(
        pg_db: PgDatabase) -> None:
    from depository.store._errors import ConfigError, StoreExistsError

    with pytest.raises(ConfigError, match="does not exist"):
        _pg.create_database(pg_db.owner_dsn, pg_db.server.dsn(pg_db.name, user="nobody"),
                            origin="o", verifier_key="k")
    with pytest.raises(ConfigError, match="owns nothing"):
        _pg.create_database(pg_db.owner_dsn, pg_db.owner_dsn, origin="o", verifier_key="k")
    with pytest.raises(ConfigError, match="superuser"):
        _pg.create_database(pg_db.owner_dsn, pg_db.super_dsn, origin="o", verifier_key="k")
    _create(pg_db)
    with pytest.raises(StoreExistsError, match="already has a schema"):
        _create(pg_db)


def _first_col(c: Any, table: str) -> str:
    return str(c.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_schema = "
        "'depository' AND table_name = %s AND ordinal_position = 1", (table,)).fetchone()[0])


def test_triggers_refuse_the_service_role_even_if_it_were_granted_more(
        pg_db: PgDatabase) -> None:
    """Second line of defence: grant the service role UPDATE and DELETE on every table (a
    misconfiguration); the WORM triggers still refuse every change but the one allowed
    deletion."""
    _create(pg_db)
    _seed(pg_db)
    with pg_db.connect(user="depository_owner") as c:
        c.execute("SET search_path = depository")
        for table in _pg_schema.TABLE_NAMES:
            c.execute(f"GRANT UPDATE, DELETE ON {table} TO {SERVICE}")
    with pg_db.connect(user=SERVICE) as c:
        c.execute("SET search_path = depository")
        for table in _schema.APPEND_ONLY_TABLES:
            col = _first_col(c, table)
            assert _refused(c, f"UPDATE {table} SET {col} = {col}") == WORM, table
            assert _refused(c, f"DELETE FROM {table}") == WORM, table
        assert _refused(c, "UPDATE inline_blob SET data = 'z'") == WORM
        assert _refused(c, "DELETE FROM inline_blob WHERE log_idx = 1") == WORM
        assert c.execute("DELETE FROM inline_blob WHERE log_idx = 2").rowcount == 1
        assert c.execute("SELECT count(*) FROM log").fetchone()[0] == 2
