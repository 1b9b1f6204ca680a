"""The WORM store: content-addressed artifacts, an RFC 6962 audit log, signed checkpoints,
retention that only extends, legal holds, and governance locks.

Only this package writes SQLite. Open a store with :meth:`Store.open` (or create one with
:meth:`Store.init`); every mutating call is durable when it returns. :class:`Store` is a
façade over :class:`StoreReads` (queries), a :class:`StoreWriter` (mutations: in process a
:class:`LocalWriter` over a :class:`LogStorage`, or a :class:`RemoteWriter` to another
process's :class:`WriterServer`) and a blob backend; see docs/adr/0009-store-components.md.
"""

from depository.store._anchor_sinks import fetch_anchors
from depository.store._backend import BlobBackend, open_backend
from depository.store._errors import (
    AuthorityError,
    ConfigError,
    DiskFullError,
    FencedError,
    GovernanceLockedError,
    HoldError,
    MetadataError,
    NotFoundError,
    NotSequencerError,
    QuotaError,
    RetentionError,
    SchemaMismatchError,
    StoreClosedError,
    StoreError,
    StoreExistsError,
    StoreNotFoundError,
    TooLargeError,
    UnknownProductError,
    WriteOnceError,
)
from depository.store._logstore import LogStorage, SqliteLogStorage
from depository.store._model import (
    INFORMATIONAL_EVENTS,
    PRODUCT_ROLES,
    ROLES,
    Artifact,
    Hold,
    PutItem,
    Receipt,
    Token,
    artifact_id,
    format_time,
    hold_covers,
    parse_time,
    token_secret_hash,
    utc_now,
)
from depository.store._native import ENGINE as PUT_ENGINE
from depository.store._prepared import PreparedPut
from depository.store._reads import StoreReads
from depository.store._remote import RemoteWriter, WriterServer
from depository.store._schema import schema_fingerprint
from depository.store._store import Store, read_config_file
from depository.store._writer import LocalWriter, StoreWriter

__all__ = [
    "INFORMATIONAL_EVENTS",
    "PRODUCT_ROLES",
    "PUT_ENGINE",
    "ROLES",
    "Artifact",
    "AuthorityError",
    "BlobBackend",
    "ConfigError",
    "DiskFullError",
    "FencedError",
    "GovernanceLockedError",
    "Hold",
    "HoldError",
    "LocalWriter",
    "LogStorage",
    "MetadataError",
    "NotFoundError",
    "NotSequencerError",
    "PreparedPut",
    "PutItem",
    "QuotaError",
    "Receipt",
    "RemoteWriter",
    "RetentionError",
    "SchemaMismatchError",
    "SqliteLogStorage",
    "Store",
    "StoreClosedError",
    "StoreError",
    "StoreExistsError",
    "StoreNotFoundError",
    "StoreReads",
    "StoreWriter",
    "Token",
    "TooLargeError",
    "UnknownProductError",
    "WriteOnceError",
    "WriterServer",
    "artifact_id",
    "fetch_anchors",
    "format_time",
    "hold_covers",
    "open_backend",
    "parse_time",
    "read_config_file",
    "schema_fingerprint",
    "token_secret_hash",
    "utc_now",
]
