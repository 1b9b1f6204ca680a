"""Authority the store honours comes from the log, never from a row the log does not explain.

The derived tables are indexes of the log. Their WORM triggers refuse UPDATE and DELETE,
not INSERT, so anyone with write access to the database file (and no signer key) can add
a row: a ``token`` row whose secret they know, or an ``artifact`` row for a name never
stored. Before the store lets such a row decide anything it checks the row against the
record it claims to derive from (``token.issue`` at ``issued_idx``, ``token.revoke`` at
``log_idx``, ``artifact.put`` at ``log_idx``): same type, same id, same fields. A row that
does not match is tampering: the write is refused and the writer records a governance lock.

Then the rules of :mod:`depository.tlog.authority` (the ones ``verify store``
replays) decide whether the token may cause the record: issued, not revoked, not
expired at the record's time, a role and product that permit it. The writer keeps the
grants it has checked in memory for its lifetime (it issues and revokes every token
itself), so a row deleted later does not change what it honours.

What this does not see: a ``token_revoke`` or ``artifact`` row *deleted* (trigger
dropped and recreated) before the writer first looked at that token or name. The offline
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


def _record(leaf: ReadLeaf, idx: int) -> dict[str, Any] | None:
    raw = leaf(idx)
    if raw is None:
        return None
    try:
        rec = parse_record(raw, index=idx)
    except VerificationError:
        return None
    return {"type": rec.type, "product": rec.product, "body": rec.body}


def _time(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text)


def explain_token(token_id: str, row: TokenRow, leaf: ReadLeaf) -> Grant:
    """The grant the log gives ``token_id``, checked against its ``token`` row (and its
    ``token_revoke`` row, if any). Raises :class:`UnexplainedRowError` on a mismatch."""
    role, product, expires, secret_sha256, issued_idx, revoked_idx = row
    rec = _record(leaf, issued_idx)
    want = {"type": "token.issue", "product": product,
            "body": {"token_id": token_id, "role": role, "expires": expires,
                     "secret_sha256": secret_sha256}}
    if rec is None or _differs(rec, want):
        raise UnexplainedRowError(
            f"token {token_id}: its row in table token (role {role}, issued_idx "
            f"{issued_idx}) is not explained by the log: record {issued_idx} is "
            f"{_what(rec)}, not the token.issue of this token. The row was inserted into "
            "the database behind the store's back")
    grant = Grant(token_id, role, product, _time(expires), issued_idx)
    if revoked_idx is not None:
        rev = _record(leaf, revoked_idx)
        if rev is None or _differs(rev, {"type": "token.revoke",
                                         "body": {"token_id": token_id}}):
            raise UnexplainedRowError(
                f"token {token_id}: its revocation row (log_idx {revoked_idx}) is not "
                f"explained by the log: record {revoked_idx} is {_what(rev)}. The row was "
                "inserted into the database behind the store's back")
        grant.revoked = revoked_idx
    return grant


def explain_artifact(aid: str, sha256: str, log_idx: int, leaf: ReadLeaf) -> None:
    """Check an ``artifact`` row (id, sha256, log_idx) against the put at ``log_idx``.
    Raises :class:`UnexplainedRowError` on a mismatch."""
    rec = _record(leaf, log_idx)
    if rec is None or _differs(rec, {"type": "artifact.put",
                                     "body": {"artifact_id": aid, "sha256": sha256}}):
        raise UnexplainedRowError(
            f"artifact {aid}: its row in table artifact (sha256 {sha256[:16]}…, log_idx "
            f"{log_idx}) is not explained by the log: record {log_idx} is {_what(rec)}, "
            "not the put of these bytes. The row was inserted into the database behind "
            "the store's back")


def _differs(rec: dict[str, Any], want: dict[str, Any]) -> bool:
    for k, v in want.items():
        if k == "body":
            body = rec["body"]
            if any(body.get(bk, object()) != bv for bk, bv in v.items()):
                return True
        elif rec[k] != v:
            return True
    return False


def _what(rec: dict[str, Any] | None) -> str:
    if rec is None:
        return "missing or unreadable"
    return f"a {rec['type']} record"


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
