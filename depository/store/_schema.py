"""The store's SQL schema: STRICT, append-only tables guarded by triggers.

Every table but ``blob`` refuses UPDATE and DELETE outright. A ``blob`` row (the bytes of
a small artifact) may be deleted only once every artifact that references it has a
committed disposal: that is the one deletion the store ever performs.

The schema text is hashed into the log's first record; a store whose schema no longer
hashes the same refuses to open for writing.
"""

from __future__ import annotations

import hashlib
import sqlite3

SCHEMA_VERSION = 1

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
    id TEXT PRIMARY KEY,
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
    created TEXT NOT NULL,
    log_idx INTEGER NOT NULL UNIQUE,
    UNIQUE (product, name)
) STRICT;
CREATE INDEX artifact_product_created ON artifact (product, created);
CREATE INDEX artifact_sha256 ON artifact (sha256);

CREATE TABLE artifact_meta (
    artifact_id TEXT NOT NULL,
    product TEXT NOT NULL,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (artifact_id, key)
) STRICT, WITHOUT ROWID;
CREATE INDEX artifact_meta_lookup ON artifact_meta (product, key, value);

CREATE TABLE blob (
    sha256 TEXT PRIMARY KEY,
    data BLOB NOT NULL
) STRICT, WITHOUT ROWID;

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
        "CREATE TRIGGER blob_no_update BEFORE UPDATE ON blob BEGIN "
        "SELECT RAISE(ABORT, 'depository: blob rows are write-once (UPDATE refused)'); END;"
    )
    parts.append(
        "CREATE TRIGGER blob_delete_only_disposed BEFORE DELETE ON blob "
        "WHEN EXISTS (SELECT 1 FROM artifact a WHERE a.sha256 = OLD.sha256 "
        "AND NOT EXISTS (SELECT 1 FROM disposal d WHERE d.artifact_id = a.id)) BEGIN "
        "SELECT RAISE(ABORT, 'depository: blob is still referenced by an artifact that has "
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
