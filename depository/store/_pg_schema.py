"""The PostgreSQL engine's schema: the SQLite tables of :mod:`._schema`, WORM by trigger
and by privilege (ADR 0013).

Same tables, same columns in the same order, same keys and checks as the SQLite schema
(a test compares them column by column); ``BIGINT`` for integers, ``BYTEA`` for blobs,
``TEXT COLLATE "C"`` for text so comparisons and ``ORDER BY`` are bytewise, as in SQLite,
whatever the database's locale. Everything lives in the schema ``depository``.

WORM, twice over:

- **Triggers.** Every table but ``inline_blob`` refuses UPDATE, DELETE and TRUNCATE; an
  ``inline_blob`` row may be deleted only once its artifact has a committed disposal (the
  one deletion the store performs), never updated or truncated. They raise SQLSTATE 23001
  (``restrict_violation``) with a message starting ``depository:``.
- **Privileges.** The tables and trigger functions belong to the role that ran ``init``
  (the owner); the service role the store runs as owns nothing and is granted SELECT and
  INSERT (and DELETE on ``inline_blob``) only, so it cannot UPDATE at all, nor ALTER, DROP
  or disable a trigger (all need ownership), nor set ``session_replication_role`` (needs a
  superuser). ``PUBLIC`` gets nothing.

The live schema's fingerprint (:func:`fingerprint`: columns, constraints, indexes,
triggers with their enabled state, functions' source, owners and ACLs) is stored in
``meta`` at init; opening for writing compares it (``PgLogStorage.schema_fingerprint``).
"""

from __future__ import annotations

import hashlib
from typing import Any

from depository.store import _schema

SCHEMA = "depository"
PG_FINGERPRINT_KEY = "pg_schema_sha256"

_T = 'TEXT COLLATE "C"'

TABLES = f"""
CREATE TABLE meta (
    key {_T} PRIMARY KEY,
    value {_T} NOT NULL
);

CREATE TABLE log (
    idx BIGINT PRIMARY KEY,
    leaf BYTEA NOT NULL,
    leaf_hash BYTEA NOT NULL CHECK (octet_length(leaf_hash) = 32)
);

CREATE TABLE node (
    level BIGINT NOT NULL CHECK (level >= 1),
    k BIGINT NOT NULL CHECK (k >= 0),
    hash BYTEA NOT NULL CHECK (octet_length(hash) = 32),
    PRIMARY KEY (level, k)
);

CREATE TABLE checkpoint (
    size BIGINT PRIMARY KEY,
    root BYTEA NOT NULL CHECK (octet_length(root) = 32),
    note BYTEA NOT NULL,
    time {_T} NOT NULL
);

CREATE TABLE artifact (
    log_idx BIGINT PRIMARY KEY,
    id {_T} NOT NULL UNIQUE,
    product {_T} NOT NULL,
    name {_T} NOT NULL,
    sha256 {_T} NOT NULL,
    size BIGINT NOT NULL CHECK (size >= 0),
    media_type {_T} NOT NULL,
    metadata {_T} NOT NULL,
    provenance {_T} NOT NULL,
    retain_until {_T} NOT NULL,
    storage {_T} NOT NULL CHECK (storage IN ('inline', 'file')),
    actor {_T} NOT NULL,
    created {_T} NOT NULL
);
CREATE INDEX artifact_product_created ON artifact (product, created, log_idx);
CREATE INDEX artifact_file_sha256 ON artifact (sha256) WHERE storage = 'file';

CREATE TABLE artifact_meta (
    product {_T} NOT NULL,
    key {_T} NOT NULL,
    value {_T} NOT NULL,
    log_idx BIGINT NOT NULL,
    PRIMARY KEY (product, key, value, log_idx)
);

CREATE TABLE inline_blob (
    log_idx BIGINT PRIMARY KEY,
    data BYTEA NOT NULL
);

CREATE TABLE retention (
    log_idx BIGINT PRIMARY KEY,
    artifact_id {_T} NOT NULL,
    retain_until {_T} NOT NULL
);
CREATE INDEX retention_artifact ON retention (artifact_id);

CREATE TABLE hold (
    id {_T} PRIMARY KEY,
    matter {_T} NOT NULL,
    reason {_T} NOT NULL,
    actor {_T} NOT NULL,
    product {_T},
    scope {_T} NOT NULL,
    placed_idx BIGINT NOT NULL UNIQUE,
    placed_time {_T} NOT NULL
);

CREATE TABLE hold_release (
    hold_id {_T} PRIMARY KEY,
    reason {_T} NOT NULL,
    actor {_T} NOT NULL,
    log_idx BIGINT NOT NULL UNIQUE,
    time {_T} NOT NULL
);

CREATE TABLE disposal (
    artifact_id {_T} PRIMARY KEY,
    sha256 {_T} NOT NULL,
    log_idx BIGINT NOT NULL UNIQUE,
    time {_T} NOT NULL
);

CREATE TABLE token (
    id {_T} PRIMARY KEY,
    role {_T} NOT NULL CHECK (role IN ('writer', 'reader', 'auditor', 'legal', 'admin')),
    product {_T},
    expires {_T},
    secret_sha256 {_T} NOT NULL UNIQUE,
    note {_T} NOT NULL,
    actor {_T} NOT NULL,
    issued_idx BIGINT NOT NULL UNIQUE,
    issued_time {_T} NOT NULL
);

CREATE TABLE token_revoke (
    token_id {_T} PRIMARY KEY,
    reason {_T} NOT NULL,
    actor {_T} NOT NULL,
    log_idx BIGINT NOT NULL UNIQUE,
    time {_T} NOT NULL
);

CREATE TABLE governance (
    log_idx BIGINT PRIMARY KEY,
    state {_T} NOT NULL CHECK (state IN ('locked', 'unlocked')),
    reason {_T} NOT NULL,
    actor {_T} NOT NULL,
    time {_T} NOT NULL
);
"""

# Several serve nodes on one database (ADR 0014): one row per sequencer election, the
# fencing epoch every sequencer transaction checks. PostgreSQL only (SQLite has one writer).
CLUSTER_TABLES = f"""
CREATE TABLE sequencer (
    epoch BIGINT PRIMARY KEY CHECK (epoch >= 1),
    node_id {_T} NOT NULL,
    advertise {_T} NOT NULL,
    log_idx BIGINT NOT NULL UNIQUE,
    time {_T} NOT NULL
);
"""
CLUSTER_TABLE_NAMES = ("sequencer",)

TABLE_NAMES = (*_schema.APPEND_ONLY_TABLES, "inline_blob")

_FUNCTIONS = f"""
CREATE FUNCTION {SCHEMA}.refuse_change() RETURNS trigger LANGUAGE plpgsql
SET search_path = pg_catalog AS $$
BEGIN
    RAISE EXCEPTION 'depository: % rows are write-once (% refused)', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'restrict_violation';
END
$$;

-- The one deletion the store performs: an artifact's inline bytes once its disposal (an
-- expired, unheld artifact, itself a log record) is committed.
CREATE FUNCTION {SCHEMA}.inline_blob_delete_only_disposed() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM {SCHEMA}.artifact a JOIN {SCHEMA}.disposal d
                   ON d.artifact_id = a.id WHERE a.log_idx = OLD.log_idx) THEN
        RAISE EXCEPTION 'depository: inline_blob row belongs to an artifact that has not '
            'been disposed (DELETE refused)' USING ERRCODE = 'restrict_violation';
    END IF;
    RETURN OLD;
END
$$;
"""


def _triggers() -> str:
    parts = []
    for table in (*_schema.APPEND_ONLY_TABLES, *CLUSTER_TABLE_NAMES):
        parts.append(f"CREATE TRIGGER {table}_no_change BEFORE UPDATE OR DELETE ON {table} "
                     f"FOR EACH ROW EXECUTE FUNCTION {SCHEMA}.refuse_change();")
    parts.append("CREATE TRIGGER inline_blob_no_update BEFORE UPDATE ON inline_blob "
                 f"FOR EACH ROW EXECUTE FUNCTION {SCHEMA}.refuse_change();")
    parts.append("CREATE TRIGGER inline_blob_delete_only_disposed BEFORE DELETE ON "
                 f"inline_blob FOR EACH ROW EXECUTE FUNCTION "
                 f"{SCHEMA}.inline_blob_delete_only_disposed();")
    for table in (*TABLE_NAMES, *CLUSTER_TABLE_NAMES):
        parts.append(f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
                     f"FOR EACH STATEMENT EXECUTE FUNCTION {SCHEMA}.refuse_change();")
    return "\n".join(parts)


def _grants(service_role: str) -> str:
    role = quote_ident(service_role)
    parts = [f"REVOKE ALL ON SCHEMA {SCHEMA} FROM PUBLIC;",
             f"GRANT USAGE ON SCHEMA {SCHEMA} TO {role};"]
    for table in (*TABLE_NAMES, *CLUSTER_TABLE_NAMES):
        parts.append(f"REVOKE ALL ON {table} FROM PUBLIC;")
        parts.append(f"GRANT SELECT, INSERT ON {table} TO {role};")
    parts.append(f"GRANT DELETE ON inline_blob TO {role};")
    for fn in ("refuse_change()", "inline_blob_delete_only_disposed()"):
        parts.append(f"REVOKE ALL ON FUNCTION {SCHEMA}.{fn} FROM PUBLIC;")
    return "\n".join(parts)


def ddl(service_role: str) -> str:
    """The whole schema for a store whose service runs as ``service_role``."""
    return (f"CREATE SCHEMA {SCHEMA};\nSET LOCAL search_path = {SCHEMA};\n" + TABLES
            + CLUSTER_TABLES + _FUNCTIONS + _triggers() + "\n" + _grants(service_role) + "\n")


def quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


# Everything that makes the schema what it is, read from the catalogs; a dropped or
# disabled trigger, a replaced function, an extra grant or a new owner changes it.
_FINGERPRINT_QUERIES = (
    ("column", """
        SELECT c.relname, a.attnum, a.attname, format_type(a.atttypid, a.atttypmod),
               a.attnotnull, coalesce(co.collname, ''),
               coalesce(pg_get_expr(d.adbin, d.adrelid), '')
        FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
        JOIN pg_namespace n ON n.oid = c.relnamespace
        LEFT JOIN pg_collation co ON co.oid = a.attcollation
        LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
        WHERE n.nspname = %(s)s AND c.relkind = 'r' AND a.attnum > 0
              AND NOT a.attisdropped
        ORDER BY 1, 2"""),
    ("constraint", """
        SELECT c.relname, k.conname, pg_get_constraintdef(k.oid)
        FROM pg_constraint k JOIN pg_class c ON c.oid = k.conrelid
        JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = %(s)s
        ORDER BY 1, 2"""),
    ("index", """
        SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = %(s)s ORDER BY 1"""),
    ("trigger", """
        SELECT c.relname, t.tgname, t.tgenabled, pg_get_triggerdef(t.oid)
        FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
        JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = %(s)s AND NOT t.tgisinternal ORDER BY 1, 2"""),
    ("function", """
        SELECT p.proname, p.prosrc, coalesce(array_to_string(p.proconfig, ','), ''),
               p.prosecdef, pg_get_userbyid(p.proowner),
               coalesce(array_to_string(p.proacl, ','), '')
        FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
        WHERE n.nspname = %(s)s ORDER BY 1"""),
    ("relation", """
        SELECT c.relname, c.relkind, pg_get_userbyid(c.relowner),
               coalesce(array_to_string(c.relacl, ','), ''), c.relrowsecurity
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = %(s)s ORDER BY 1"""),
    ("schema", """
        SELECT nspname, pg_get_userbyid(nspowner),
               coalesce(array_to_string(nspacl, ','), '')
        FROM pg_namespace WHERE nspname = %(s)s"""),
)


def fingerprint(conn: Any) -> str:
    """SHA-256 over the catalog rows that define the store's schema (``conn``: psycopg)."""
    h = hashlib.sha256()
    for kind, sql in _FINGERPRINT_QUERIES:
        for row in conn.execute(sql, {"s": SCHEMA}).fetchall():
            h.update("\x1f".join(str(x) for x in (kind, *row)).encode() + b"\x1e")
    return h.hexdigest()


def reference_fingerprint() -> str:
    """The fingerprint of the SQLite reference schema (:data:`._schema.SCHEMA_SQL`).

    A PostgreSQL store freezes this value in its ``store.init`` record, exactly as a new
    SQLite store does, so both engines write the same record bytes for the same inputs
    (and a store migrated between them keeps its first record). Its own catalog is held
    to the fingerprint stored in ``meta`` at init.
    """
    return _schema.reference_fingerprint()
