"""Bearer tokens and what each role may do.

| role | scope | may |
|---|---|---|
| writer | one product | upload; read its product's artifacts, metadata, listings, proofs |
| reader | one product | read its product's artifacts, metadata, listings, proofs |
| auditor | store-wide | metadata, listings, log, proofs, holds, governance, monitoring;
  never content |
| legal | store-wide or one product | holds, retention, evidence exports, and reads (content
  too) within scope |
| admin | store-wide | tokens, governance, holds, retention, monitoring, metadata, log;
  no content reads, so no evidence exports either (they carry content) |

A product-scoped token asking about another product gets exactly the answer a missing
artifact gets (404 ``not-found``): nothing tells it whether the product or the artifact
exists.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from depository.service._problems import Problem, artifact_not_found
from depository.store import Store, Token

WRITER, READER, AUDITOR, LEGAL, ADMIN = "writer", "reader", "auditor", "legal", "admin"
_MAX_SECRET = 512
_CACHE_TTL = 1.0  # seconds; revocations through the store invalidate at once
_CACHE_MAX = 10_000


@dataclass(frozen=True)
class Principal:
    """The caller: a live token."""

    token: Token

    @property
    def role(self) -> str:
        return self.token.role

    @property
    def product(self) -> str | None:
        return self.token.product

    @property
    def actor(self) -> str:
        """What the audit log records as the actor."""
        return f"token:{self.token.id}"

    @property
    def store_wide(self) -> bool:
        return self.token.product is None

    def to_json(self) -> dict[str, object]:
        return {"token_id": self.token.id, "role": self.role, "product": self.product,
                "expires": self.token.expires}


_UNAUTHORIZED_HEADERS = {"WWW-Authenticate": 'Bearer realm="depository"'}


def _unauthorized(detail: str) -> Problem:
    return Problem("unauthorized", detail, field="header:Authorization",
                   headers=dict(_UNAUTHORIZED_HEADERS))


class Authenticator:
    """Resolves ``Authorization: Bearer`` headers to principals, with a cache.

    The cache, keyed by the secret's SHA-256, only saves the database lookup: expiry is
    checked against the injected clock on every request, and an entry is used only
    while the store's :attr:`~Store.token_generation` is the one read before its lookup,
    so a token revoked through the store (by this service or any other caller in the
    process) stops working as soon as the revocation returns. The short TTL bounds
    staleness for changes the store instance cannot see.
    """

    def __init__(self, store: Store, clock: Callable[[], datetime],
                 ttl: float = _CACHE_TTL) -> None:
        self._store = store
        self._clock = clock
        self._ttl = ttl
        self._cache: dict[bytes, tuple[Token, int, float]] = {}
        self._lock = threading.Lock()

    def invalidate(self) -> None:
        with self._lock:
            self._cache.clear()

    def authenticate(self, header: str | None) -> Principal:
        if not header:
            raise _unauthorized("this operation needs a bearer token")
        scheme, _, secret = header.partition(" ")
        secret = secret.strip()
        if scheme.lower() != "bearer" or not secret:
            raise _unauthorized("the Authorization header must be 'Bearer <token>'")
        if len(secret) > _MAX_SECRET or not secret.isascii() or not secret.isprintable():
            raise _unauthorized("the bearer token is unknown, expired or revoked")
        key = hashlib.sha256(secret.encode()).digest()
        # Read before the lookup: a change committed meanwhile makes the entry stale.
        gen = self._store.token_generation
        now_mono = time.monotonic()
        cached = self._cache.get(key)
        token: Token | None
        if cached is not None and cached[1] == gen and cached[2] > now_mono:
            token = cached[0]
        else:
            token = self._store.authenticate(secret, self._clock())
            if token is not None:
                with self._lock:
                    if len(self._cache) >= _CACHE_MAX:
                        self._cache.clear()
                    self._cache[key] = (token, gen, now_mono + self._ttl)
        if token is None or (token.expires is not None and not token.valid_at(self._clock())):
            raise _unauthorized("the bearer token is unknown, expired or revoked")
        return Principal(token)


def _forbidden(p: Principal, what: str) -> Problem:
    return Problem("forbidden", f"a {p.role} token may not {what}",
                   field="header:Authorization")


def check_product_scope(p: Principal, product: str, name: str = "") -> None:
    """A scoped token naming another product gets a missing artifact's 404."""
    if p.product is not None and p.product != product:
        if not name:
            raise Problem("not-found", f"no product {product!r} visible to this token",
                          field="path:product")
        raise artifact_not_found(product, name)


def require_known_product(store: Store, p: Principal, product: str, name: str = "") -> None:
    check_product_scope(p, product, name)
    if product not in store.config.products:
        if p.product is not None:  # pragma: no cover - scope check above covers it
            raise artifact_not_found(product, name)
        raise Problem("unknown-product",
                      f"unknown product {product!r}; configured products: "
                      f"{', '.join(sorted(store.config.products))}", field="path:product")


def require_upload(store: Store, p: Principal, product: str, name: str) -> None:
    check_product_scope(p, product, name)
    if p.role != WRITER:
        raise _forbidden(p, "upload artifacts (only writer tokens may)")
    require_known_product(store, p, product, name)


def require_metadata(store: Store, p: Principal, product: str, name: str = "") -> None:
    """Metadata, listings and proofs: every role, within its scope."""
    require_known_product(store, p, product, name)


def require_content(store: Store, p: Principal, product: str, name: str) -> None:
    check_product_scope(p, product, name)
    if p.role not in (WRITER, READER, LEGAL):
        raise _forbidden(p, "read artifact content (auditors and admins read metadata, "
                            "log and proofs only)")
    require_known_product(store, p, product, name)


def require_store_wide_reader(p: Principal, what: str) -> None:
    """The whole log (every product's records): auditor, admin, store-wide legal."""
    if p.role not in (AUDITOR, ADMIN, LEGAL) or not p.store_wide:
        raise _forbidden(p, f"{what} (it spans every product; auditor, admin or "
                            "store-wide legal only)")


def require_role(p: Principal, roles: tuple[str, ...], what: str) -> None:
    if p.role not in roles:
        raise _forbidden(p, f"{what} ({', '.join(roles)} only)")
