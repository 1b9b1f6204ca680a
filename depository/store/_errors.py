"""The store's named errors. The CLI turns them into messages and exit codes."""


class StoreError(Exception):
    """Base class for every refusal or failure of the store."""


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


class MetadataError(StoreError):
    """Metadata or provenance fail validation against the product's schema."""


class TooLargeError(StoreError):
    """The artifact exceeds the configured maximum size."""


class QuotaError(StoreError):
    """A product's storage or artifact-count quota would be exceeded."""

    def __init__(self, message: str, *, kind: str, used: int, limit: int) -> None:
        super().__init__(message)
        self.kind = kind
        self.used = used
        self.limit = limit


class RetentionError(StoreError):
    """Retention can only be extended, or disposal before expiry was asked for."""


class HoldError(StoreError):
    """A legal hold operation is invalid, or a hold blocks the operation."""


class GovernanceLockedError(StoreError):
    """The store is under a governance lock and refuses writes."""


class SchemaMismatchError(StoreError):
    """The SQL schema or a product schema no longer matches what the log froze."""


class DiskFullError(StoreError):
    """The disk is full; nothing was written."""


class StoreClosedError(StoreError):
    """The store was closed."""


class AuthorityError(StoreError):
    """The token named as the actor may not cause this record, judged from the log: never
    issued, revoked, expired, or its role or product does not permit it."""
