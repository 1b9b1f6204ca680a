"""The WORM store: content-addressed artifacts, an RFC 6962 audit log, signed checkpoints,
retention that only extends, legal holds, and governance locks.

Only this package writes SQLite. Open a store with :meth:`Store.open` (or create one with
:meth:`Store.init`); every mutating call is durable when it returns.
"""

from depository.store._errors import (
    ConfigError,
    DiskFullError,
    GovernanceLockedError,
    HoldError,
    MetadataError,
    NotFoundError,
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
from depository.store._store import (
    Artifact,
    Hold,
    Receipt,
    Store,
    artifact_id,
    format_time,
    parse_time,
    read_config_file,
    utc_now,
)

__all__ = [
    "Artifact",
    "ConfigError",
    "DiskFullError",
    "GovernanceLockedError",
    "Hold",
    "HoldError",
    "MetadataError",
    "NotFoundError",
    "QuotaError",
    "Receipt",
    "RetentionError",
    "SchemaMismatchError",
    "Store",
    "StoreClosedError",
    "StoreError",
    "StoreExistsError",
    "StoreNotFoundError",
    "TooLargeError",
    "UnknownProductError",
    "WriteOnceError",
    "artifact_id",
    "format_time",
    "parse_time",
    "read_config_file",
    "utc_now",
]
