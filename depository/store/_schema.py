"""The store's SQL schema: STRICT, append-only tables guarded by triggers.

Every table but ``inline_blob`` refuses UPDATE and DELETE outright. An ``inline_blob`` row
(the bytes of a small artifact, keyed by the artifact's log index) may be deleted only
once that artifact has a committed disposal: the one deletion the store ever performs.

Version 2 (ADR 0004) keys the artifact tables by log index, so a put appends to
log-ordered trees and touches a single randomly keyed one (the artifact id index).

The schema text is hashed into the log's first record; a store whose schema no longer
hashes the same refuses to open for writing.
"""

from __future__ import annotations

import functools
import hashlib
import sqlite3

SCHEMA_VERSION = 2

_TABLES = """
CREATE TABLE meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
) STRICT;

CREATE TABLE log (
    idx INTEGER PRIMARY KEY,
    leaf BLOB NOT NULL,
    leaf_hash BLOB NOT NULL CHECK (length(leaf_hash) = 32)
) STRICT;

CREATE TABLE node (
    level INTEGER NOT NULL CHECK (level >= 1),
    k INTEGER NOT NULL CHECK (k >= 0),
    hash BLOB NOT NULL CHECK (length(hash) = 32),
    PRIMARY KEY (level, k)
) STRICT, WITHOUT ROWID;

CREATE TABLE checkpoint (
    size INTEGER PRIMARY KEY,
    root BLOB NOT NULL CHECK (length(root) = 32),
    note BLOB NOT NULL,
    time TEXT NOT NULL
) STRICT;

CREATE TABLE artifact (
    log_idx INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    product TEXT NOT NULL,
    name TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    size INTEGER NOT NULL CHECK (size >= 0),
    media_type TEXT NOT NULL,
    metadata TEXT NOT NULL,
    provenance TEXT NOT NULL,
    retain_until TEXT NOT NULL,
    storage TEXT NOT NULL CHECK (storage IN ('inline', 'file')),
    actor TEXT NOT NULL,
    created TEXT NOT NULL
) STRICT;
-- Rows are in log order (the rowid is the log index), so the only randomly keyed tree
-- a put touches is the id index. No UNIQUE (product, name): id is SHA-256(product NUL
-- name) truncated to 120 bits, so a unique id already makes (product, name) unique.
-- ls: product + time range (+ log-order cursor, the implicit rowid tail).
CREATE INDEX artifact_product_created ON artifact (product, created);
-- Dedup and disposal refcount only file-backed bytes; inline bytes are per artifact.
CREATE INDEX artifact_file_sha256 ON artifact (sha256) WHERE storage = 'file';

-- ls: product + metadata field = value, matches in log order; no artifact-id tree.
CREATE TABLE artifact_meta (
    product TEXT NOT NULL,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    log_idx INTEGER NOT NULL,
    PRIMARY KEY (product, key, value, log_idx)
) STRICT, WITHOUT ROWID;

-- Bytes of small artifacts, keyed by the artifact's log index (appended in order).
CREATE TABLE inline_blob (
    log_idx INTEGER PRIMARY KEY,
    data BLOB NOT NULL
) STRICT;

CREATE TABLE retention (
    log_idx INTEGER PRIMARY KEY,
    artifact_id TEXT NOT NULL,
    retain_until TEXT NOT NULL
) STRICT;
CREATE INDEX retention_artifact ON retention (artifact_id);

CREATE TABLE hold (
    id TEXT PRIMARY KEY,
    matter TEXT NOT NULL,
    reason TEXT NOT NULL,
    actor TEXT NOT NULL,
    product TEXT,
    scope TEXT NOT NULL,
    placed_idx INTEGER NOT NULL UNIQUE,
    placed_time TEXT NOT NULL
) STRICT;

CREATE TABLE hold_release (
    hold_id TEXT PRIMARY KEY,
    reason TEXT NOT NULL,
    actor TEXT NOT NULL,
    log_idx INTEGER NOT NULL UNIQUE,
    time TEXT NOT NULL
) STRICT;

CREATE TABLE disposal (
    artifact_id TEXT PRIMARY KEY,
    sha256 TEXT NOT NULL,
    log_idx INTEGER NOT NULL UNIQUE,
    time TEXT NOT NULL
) STRICT;

CREATE TABLE token (
    id TEXT PRIMARY KEY,
    role TEXT NOT NULL CHECK (role IN ('writer', 'reader', 'auditor', 'legal', 'admin')),
    product TEXT,
    expires TEXT,
    secret_sha256 TEXT NOT NULL UNIQUE,
    note TEXT NOT NULL,
    actor TEXT NOT NULL,
    issued_idx INTEGER NOT NULL UNIQUE,
    issued_time TEXT NOT NULL
) STRICT;

CREATE TABLE token_revoke (
    token_id TEXT PRIMARY KEY,
    reason TEXT NOT NULL,
    actor TEXT NOT NULL,
    log_idx INTEGER NOT NULL UNIQUE,
    time TEXT NOT NULL
) STRICT;

CREATE TABLE governance (
    log_idx INTEGER PRIMARY KEY,
    state TEXT NOT NULL CHECK (state IN ('locked', 'unlocked')),
    reason TEXT NOT NULL,
    actor TEXT NOT NULL,
    time TEXT NOT NULL
) STRICT;
"""

# Tables whose rows can never change once committed.
APPEND_ONLY_TABLES = (
    "meta", "log", "node", "checkpoint", "artifact", "artifact_meta", "retention", "hold",
    "hold_release", "disposal", "governance", "token", "token_revoke",
)


def _triggers() -> str:
    parts = []
    for table in APPEND_ONLY_TABLES:
        for op in ("UPDATE", "DELETE"):
            parts.append(
                f"CREATE TRIGGER {table}_no_{op.lower()} BEFORE {op} ON {table} BEGIN "
                f"SELECT RAISE(ABORT, 'depository: {table} rows are write-once "
                f"({op} refused)'); END;"
            )
    parts.append(
        "CREATE TRIGGER inline_blob_no_update BEFORE UPDATE ON inline_blob BEGIN "
        "SELECT RAISE(ABORT, 'depository: inline_blob rows are write-once (UPDATE refused)'); "
        "END;"
    )
    # The one deletion the store performs: an artifact's inline bytes once its disposal
    # (an expired, unheld artifact, itself a log record) is committed.
    parts.append(
        "CREATE TRIGGER inline_blob_delete_only_disposed BEFORE DELETE ON inline_blob "
        "WHEN NOT EXISTS (SELECT 1 FROM artifact a JOIN disposal d ON d.artifact_id = a.id "
        "WHERE a.log_idx = OLD.log_idx) BEGIN "
        "SELECT RAISE(ABORT, 'depository: inline_blob row belongs to an artifact that has "
        "not been disposed (DELETE refused)'); END;"
    )
    return "\n".join(parts)


SCHEMA_SQL = _TABLES + "\n" + _triggers() + "\n"


def create(conn: sqlite3.Connection) -> None:
    """Create every table, index and trigger in an empty database."""
    conn.executescript(SCHEMA_SQL)


def schema_fingerprint(conn: sqlite3.Connection) -> str:
    """SHA-256 over the stored definitions of every table, index and trigger.

    Read from ``sqlite_master`` so a dropped trigger or an altered table changes it.
    """
    rows = conn.execute(
        "SELECT type, name, tbl_name, coalesce(sql, '') FROM sqlite_master "
        "WHERE name NOT LIKE 'sqlite_%' ORDER BY type, name"
    ).fetchall()
    h = hashlib.sha256()
    for row in rows:
        h.update("\x1f".join(str(x) for x in row).encode() + b"\x1e")
    return h.hexdigest()


@functools.cache
def reference_fingerprint() -> str:
    """The fingerprint of a new store's schema (:data:`SCHEMA_SQL` in an empty database).

    What a new SQLite store freezes in its ``store.init`` record; a PostgreSQL store
    freezes the same value (ADR 0013), so the first record is engine-independent.
    """
    conn = sqlite3.connect(":memory:")
    try:
        create(conn)
        return schema_fingerprint(conn)
    finally:
        conn.close()
