"""Who may cause which record: the log's authorization rules, replayable from the log alone.

A record whose actor is ``token:<id>`` was written on the authority of a bearer token. It
is authorized only if, at that record's point in the log, the token

1. was issued by an earlier ``token.issue`` record (``<id>`` is its ``token_id``) that
   was itself authorized (a token minted on forged authority grants nothing; the
   verifier tracks that, the store never issues one),
2. has no earlier ``token.revoke`` record and had not expired at the record's ``time``,
3. has a role that may cause that record type (:data:`ROLE_EVENTS`, the rules the HTTP
   service applies), and
4. if it is scoped to a product, the record belongs to that product.

Other actors (``cli``, ``depository``, an operator's name) are the store's own operators,
who hold the signer key: nothing in the log grants or limits them, so they are not
judged here. The store's writer applies the same rules before it signs a record (so it
never writes one the verifier refuses) and the offline verifier replays them.

Standard library only: the offline verifier and the store both use it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

__all__ = [
    "PRODUCT_ROLES",
    "ROLE_EVENTS",
    "SEQUENCER_ELECTED",
    "STORE_WIDE_ROLES",
    "TOKEN_ACTOR",
    "Grant",
    "election_problem",
    "issue_problem",
    "refusal",
    "token_id_of",
]

TOKEN_ACTOR = "token:"
"""The actor prefix of a record written on a bearer token's authority."""

_CURATE = frozenset({"hold.place", "hold.release", "retention.extend", "retention.refused"})

ROLE_EVENTS: Mapping[str, frozenset[str]] = {
    # A refusal record is the attempt the role may make, refused and logged.
    "writer": frozenset({"artifact.put", "artifact.refused"}),
    "reader": frozenset(),
    "auditor": frozenset(),
    "legal": _CURATE | {"evidence.export"},
    "admin": _CURATE | {"governance.lock", "governance.unlock", "token.issue", "token.revoke",
                        "alert.ack"},
}
"""The record types a token of each role may cause (nothing else: no disposals, no
certification runs, no store.init)."""

PRODUCT_ROLES = ("writer", "reader")
"""Roles whose tokens must name one product."""

STORE_WIDE_ROLES = ("auditor", "admin")
"""Roles whose tokens may not name a product (legal may be either)."""


@dataclass(slots=True)
class Grant:
    """A token as the log defines it: its ``token.issue`` record, and its revocation."""

    token_id: str
    role: str
    product: str | None
    expires: datetime | None
    issued: int  # log index of the token.issue record
    revoked: int | None = None  # log index of the token.revoke record


def token_id_of(actor: str) -> str | None:
    """The token id of a ``token:<id>`` actor, else None."""
    if actor.startswith(TOKEN_ACTOR):
        return actor[len(TOKEN_ACTOR):]
    return None


def issue_problem(role: str, product: str | None) -> str | None:
    """What is wrong with issuing a token of ``role`` scoped to ``product`` (None: nothing)."""
    if role not in ROLE_EVENTS:
        return f"unknown role {role!r} (roles: {', '.join(ROLE_EVENTS)})"
    if role in PRODUCT_ROLES and product is None:
        return f"a {role} token must be scoped to a product, and this one is store-wide"
    if role in STORE_WIDE_ROLES and product is not None:
        return f"an {role} token is store-wide, but this one names product {product!r}"
    return None


def refusal(grant: Grant | None, token_id: str, typ: str, product: str | None,
            at: datetime | None) -> str | None:
    """Why token ``token_id`` (its ``grant`` so far in the log, or None) may not cause a
    record of type ``typ`` for ``product`` at time ``at``; None when it may."""
    if grant is None:
        return (f"token {token_id} was never issued: no earlier token.issue record names it, "
                "so nothing in the log granted this authority")
    if grant.revoked is not None:
        return (f"token {token_id} was revoked by record {grant.revoked}, before this "
                "record")
    if grant.expires is not None and at is not None and at >= grant.expires:
        return (f"token {token_id} expired at {_show_time(grant.expires)}, before this "
                f"record's time {_show_time(at)}")
    allowed = ROLE_EVENTS.get(grant.role, frozenset())
    if typ not in allowed:
        may = ", ".join(sorted(allowed)) or "nothing"
        return (f"token {token_id} is a {grant.role} token (issued by record "
                f"{grant.issued}), and a {grant.role} token may not cause {typ} (it may "
                f"cause: {may})")
    if grant.product is not None and product != grant.product:
        where = f"product {product!r}" if product is not None else "the whole store"
        return (f"token {token_id} is scoped to product {grant.product!r}, but this record "
                f"is for {where}")
    return None


SEQUENCER_ELECTED = "sequencer.elected"
"""The record a newly elected sequencer appends first (several nodes on one database,
ADR 0014): ``{"node_id", "epoch", "previous", "previous_epoch"}``, store-wide, written by
the store itself (no token may cause it). ``previous`` / ``previous_epoch`` name the
election before it in the database (null for the first)."""


def election_problem(last: tuple[int, str] | None, node_id: str, epoch: int,
                     previous: str | None, previous_epoch: int | None) -> str | None:
    """What is wrong with a ``sequencer.elected`` record, given the last one before it in
    the log (``(epoch, node_id)``, or None); None when nothing is.

    Epochs only grow, so a deposed sequencer's election cannot be replayed after a newer
    one. The record's predecessor is the newest election in the database, which is at
    least the last one in the log (a sequencer that died between its election and its
    record leaves an epoch the log skips); when it is that one, it names the same node.
    """
    if (previous is None) != (previous_epoch is None):
        return "previous and previous_epoch must both be null or both be set"
    if previous_epoch is not None and epoch <= previous_epoch:
        return (f"epoch {epoch} is not greater than the previous sequencer's epoch "
                f"{previous_epoch}")
    if epoch < 1:
        return f"epoch {epoch} is not positive"
    if last is None:
        return None
    last_epoch, last_node = last
    if epoch <= last_epoch:
        return (f"epoch {epoch} does not exceed epoch {last_epoch} of the election before it "
                f"(node {last_node!r}): epochs only grow, so this election was replayed or "
                "forged")
    if previous_epoch is None or previous_epoch < last_epoch:
        return (f"it names previous epoch {previous_epoch}, older than the logged election "
                f"of epoch {last_epoch} (node {last_node!r})")
    if previous_epoch == last_epoch and previous != last_node:
        return (f"it names {previous!r} as the sequencer of epoch {last_epoch}, but the "
                f"log's election of that epoch is node {last_node!r}")
    return None


def _show_time(t: datetime) -> str:
    return t.isoformat().replace("+00:00", "Z")
