"""Authority the store honours comes from the log, never from a row the log does not explain.

The derived tables are indexes of the log. Their WORM triggers refuse UPDATE and DELETE,
not INSERT, so anyone with write access to the database file (and no signer key) can add
a row: a ``token`` row whose secret they know, or an ``artifact`` row for a name never
stored. Before the store lets such a row decide anything it checks the row against the
record it claims to derive from (``token.issue`` at ``issued_idx``, ``token.revoke`` at
``log_idx``, ``artifact.put`` at ``log_idx``, ``hold.place`` at ``placed_idx``,
``hold.release`` at ``log_idx``): same type, same id, same fields. A row that does not
match is tampering: the write is refused and the writer records a governance lock.

Then the rules of :mod:`depository.tlog.authority` (the ones ``verify store``
replays) decide whether the token may cause the record: issued, not revoked, not
expired at the record's time, a role and product that permit it. The writer keeps the
grants it has checked in memory for its lifetime (it issues and revokes every token
itself), so a row deleted later does not change what it honours.

What this does not see: a ``token_revoke``, ``artifact`` or ``hold`` row *deleted*
(trigger dropped and recreated) before the writer first looked at it. The offline
verifier reports the missing row and every record written because of it.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any, Protocol

from depository.store._errors import AuthorityError, StoreError
from depository.tlog.authority import ROLE_EVENTS, Grant, refusal, token_id_of
from depository.tlog.errors import VerificationError
from depository.tlog.record import parse_record

# role, product, expires, secret_sha256, issued_idx, revoked_idx (None: not revoked)
TokenRow = tuple[str, str | None, str | None, str, int, int | None]
ReadLeaf = Callable[[int], bytes | None]


class Rows(Protocol):
    """Where the writer reads a token's rows and a record's leaf."""

    def token_row(self, token_id: str) -> TokenRow | None: ...

    def leaf(self, idx: int) -> bytes | None: ...


class UnexplainedRowError(StoreError):
    """A derived row that decides a write does not match the record it claims to derive
    from: the database was written behind the store's back."""


_BEHIND = "The row was inserted into the database behind the store's back"
_ABSENT: Any = object()


def explain(leaf: ReadLeaf, idx: int, typ: str, body: dict[str, Any], row: str, *,
            product: Any = _ABSENT) -> None:
    """Check that record ``idx`` is a ``typ`` record whose body has these fields (and
    this envelope ``product``, if given): the record the derived ``row`` (described for
    the message) claims to come from. Raises :class:`UnexplainedRowError` if not."""
    raw = leaf(idx) if idx >= 0 else None
    rec = None
    if raw is not None:
        try:
            rec = parse_record(raw, index=idx)
        except VerificationError:
            rec = None
    if rec is None:
        what = "missing or unreadable"
    elif rec.type != typ or (product is not _ABSENT and rec.product != product) or any(
            rec.body.get(k, _ABSENT) != v for k, v in body.items()):
        what = f"a {rec.type} record" + (" with other fields" if rec.type == typ else "")
    else:
        return
    raise UnexplainedRowError(f"{row} is not explained by the log: record {idx} is {what}, "
                              f"not the {typ} it claims. {_BEHIND}")



def _time(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text)


def explain_token(token_id: str, row: TokenRow, leaf: ReadLeaf) -> Grant:
    """The grant the log gives ``token_id``, checked against its ``token`` row (and its
    ``token_revoke`` row, if any). Raises :class:`UnexplainedRowError` on a mismatch."""
    role, product, expires, secret_sha256, issued_idx, revoked_idx = row
    explain(leaf, issued_idx, "token.issue",
            {"token_id": token_id, "role": role, "expires": expires,
             "secret_sha256": secret_sha256},
            f"token {token_id}: its row in table token (role {role}, issued_idx "
            f"{issued_idx})", product=product)
    grant = Grant(token_id, role, product, _time(expires), issued_idx)
    if revoked_idx is not None:
        explain(leaf, revoked_idx, "token.revoke", {"token_id": token_id},
                f"token {token_id}: its revocation row (log_idx {revoked_idx})")
        grant.revoked = revoked_idx
    return grant


def explain_artifact(aid: str, sha256: str, log_idx: int, leaf: ReadLeaf) -> None:
    """Check an ``artifact`` row (id, sha256, log_idx) against the put at ``log_idx``."""
    explain(leaf, log_idx, "artifact.put", {"artifact_id": aid, "sha256": sha256},
            f"artifact {aid}: its row in table artifact (sha256 {sha256[:16]}…, log_idx "
            f"{log_idx})")


class WriterAuthority:
    """The token grants the writer honours, each checked against the log once and then
    kept (the writer issues and revokes every later change itself)."""

    def __init__(self) -> None:
        self._grants: dict[str, Grant] = {}

    def clear(self) -> None:
        """Forget every grant (a batch was rolled back: its issues and revocations with
        it); they are checked against the log again on next use."""
        self._grants.clear()

    def refuse(self, actor: str, typ: str, product: str | None, now: datetime, rows: Rows
               ) -> StoreError | None:
        """None if ``actor`` may cause a ``typ`` record for ``product`` at ``now``; else the
        error refusing it. Only ``token:<id>`` actors are judged (operators with the
        signer key are not limited by the log). Raises :class:`UnexplainedRowError`."""
        tid = token_id_of(actor)
        if tid is None:
            return None
        g = self._grants.get(tid)
        if g is None:
            found = rows.token_row(tid)
            if found is not None:
                g = self._grants[tid] = explain_token(tid, found, rows.leaf)
        elif (g.revoked is None and g.expires is None and g.product == product
              and typ in ROLE_EVENTS[g.role]):
            return None  # the common case (every put of a writer token), decided at once
        why = refusal(g, tid, typ, product, now)
        return None if why is None else AuthorityError(
            f"refused: {why} (judged from the log, as `verify store` replays it)")

    def issued(self, token_id: str, role: str, product: str | None, expires: str | None,
               idx: int) -> None:
        self._grants[token_id] = Grant(token_id, role, product, _time(expires), idx)

    def revoked(self, grant: Grant, idx: int) -> None:
        """``grant`` (checked against the log) is revoked by record ``idx``: kept so, even
        if the revocation row is deleted later."""
        grant.revoked = idx
        self._grants[grant.token_id] = grant
