"""Bearer tokens on the writer: issuing and revoking (logged), and the generation counter
an authentication cache keys on. What the writer decides is in ``_decisions``; reading
and checking tokens is :class:`~depository.store._reads.StoreReads`."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import datetime

from depository.store import _decisions
from depository.store._engine import Txn, WriterEngine
from depository.store._errors import StoreError
from depository.store._model import PRODUCT_ROLES, ROLES, Clock, Token, format_time
from depository.store.config import Product


class Tokens:
    """Issue and revoke tokens through one writer engine."""

    def __init__(self, engine: WriterEngine, product: Callable[[str], Product],
                 clock: Clock) -> None:
        self.engine = engine
        self.product = product
        self.clock = clock
        self._generation = 0
        self._lock = threading.Lock()

    @property
    def generation(self) -> int:
        """Changes after every token issued or revoked through this writer (committed)."""
        return self._generation

    def _changed(self) -> None:
        with self._lock:  # two revocations at once must both move it
            self._generation += 1

    def create(self, *, role: str, actor: str, product: str | None = None,
               expires: datetime | None = None, note: str = "") -> tuple[str, Token]:
        """Issue a bearer token; returns (secret, record). The secret is shown only now."""
        if role not in ROLES:
            raise StoreError(f"unknown role {role!r}; roles: {', '.join(ROLES)}")
        if role in PRODUCT_ROLES and product is None:
            raise StoreError(f"a {role} token needs a product (--product)")
        if role in ("auditor", "admin") and product is not None:
            raise StoreError(f"an {role} token is store-wide; omit --product")
        if product is not None:
            self.product(product)
        expires_text = format_time(expires) if expires else None
        if expires is not None and expires <= self.clock():
            raise StoreError("the token's expiry is in the past")

        def op(txn: Txn) -> tuple[str, Token]:
            return _decisions.issue_token(txn, role=role, actor=actor, product=product,
                                          expires_text=expires_text, note=note)

        result: tuple[str, Token] = self.engine.submit(op).result()
        self._changed()
        return result

    def revoke(self, token_id: str, *, reason: str, actor: str) -> int:
        """Revoke a token (logged); it stops working at once."""
        if not reason.strip():
            raise StoreError("revoking a token needs a reason")

        def op(txn: Txn) -> int | StoreError:
            return _decisions.revoke_token(txn, token_id, reason=reason, actor=actor)

        try:
            return int(self.engine.submit(op).result())
        finally:
            self._changed()
