"""The store's named errors. The CLI turns them into messages and exit codes.

Errors carry their data as attributes (:class:`QuotaError` its figures,
:class:`MetadataError` the part and field at fault, :class:`GovernanceLockedError` the lock's
reason), so callers such as the HTTP service map them without reading the message. Every
error is built as ``cls(message, **attrs)``, and :meth:`StoreError.attrs` returns those
keywords: that is how an error crosses the ``serve --workers`` channel as itself.
"""

from __future__ import annotations

from typing import Any


class StoreError(Exception):
    """Base class for every refusal or failure of the store."""

    def attrs(self) -> dict[str, Any]:
        """The keyword arguments (besides the message) that rebuild this error."""
        return {}


class ConfigError(StoreError):
    """The configuration file is invalid (the message names the key)."""


class StoreNotFoundError(StoreError):
    """No store at that path, or it is not initialised."""


class StoreExistsError(StoreError):
    """``init`` found an existing store."""


class UnknownProductError(StoreError):
    """The product id is not configured."""


class NotFoundError(StoreError):
    """No such artifact (or one of another product: the two are indistinguishable)."""


class WriteOnceError(StoreError):
    """An artifact name already holds different bytes; artifacts are write-once."""


# The parts of a put a MetadataError can name.
METADATA_PARTS = ("metadata", "provenance", "name", "actor", "media_type")


class MetadataError(StoreError):
    """Metadata, provenance, the name, actor or media type fail validation.

    ``part`` is which of :data:`METADATA_PARTS` is at fault (None: not known). ``field``
    is set only for a metadata field the product's schema rejects: its path inside the
    metadata object (``"a/b"``; ``""`` for the top level).
    """

    def __init__(self, message: str, *, part: str | None = None,
                 field: str | None = None) -> None:
        super().__init__(message)
        self.part = part
        self.field = field

    def attrs(self) -> dict[str, Any]:
        return {"part": self.part, "field": self.field}


class TooLargeError(StoreError):
    """The artifact exceeds the configured maximum size."""


class QuotaError(StoreError):
    """A product's storage or artifact-count quota would be exceeded."""

    def __init__(self, message: str, *, kind: str, used: int, limit: int) -> None:
        super().__init__(message)
        self.kind = kind
        self.used = used
        self.limit = limit

    def attrs(self) -> dict[str, Any]:
        return {"kind": self.kind, "used": self.used, "limit": self.limit}


class RetentionError(StoreError):
    """Retention can only be extended, or disposal before expiry was asked for."""


class HoldError(StoreError):
    """A legal hold operation is invalid, or a hold blocks the operation."""


class GovernanceLockedError(StoreError):
    """The store is under a governance lock and refuses writes; ``reason`` is the lock's."""

    def __init__(self, message: str, *, reason: str = "") -> None:
        super().__init__(message)
        self.reason = reason

    @classmethod
    def of(cls, reason: str) -> GovernanceLockedError:
        """The refusal every write meets under the lock ``reason``."""
        return cls(
            f"the store is under a governance lock: {reason}. Writes are refused until an "
            "admin investigates and runs `depository governance unlock --reason ...`",
            reason=reason)

    def attrs(self) -> dict[str, Any]:
        return {"reason": self.reason}


class SchemaMismatchError(StoreError):
    """The SQL schema or a product schema no longer matches what the log froze."""


class DiskFullError(StoreError):
    """The disk is full; nothing was written."""


class StoreClosedError(StoreError):
    """The store was closed."""


class NotSequencerError(StoreClosedError):
    """Several nodes on one database (ADR 0014): this node is not the sequencer and none
    could be reached to take the write; nothing was written. Retry shortly (a failover
    takes about a second)."""


class FencedError(NotSequencerError):
    """A sequencer found a newer epoch in the database inside its transaction: another
    node was elected, so this one may no longer append, and its transaction was rolled
    back (nothing of it was committed)."""


class AuthorityError(StoreError):
    """The token named as the actor may not cause this record, judged from the log: never
    issued, revoked, expired, or its role or product does not permit it."""
