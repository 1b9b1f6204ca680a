"""What the writer decides inside its transaction about puts and tokens.

One place for the decisions that depend on the log: write-once (a name holds one set of
bytes forever), quotas, the governance lock, and issuing or revoking a bearer token.
Each function runs on the writer thread with a :class:`~depository.store._engine.Txn`
and returns its result or the :class:`StoreError` refusing it (returned, not raised, so
the rest of the batch goes on).
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Sequence

from depository.store._authority import UnexplainedRowError, explain_artifact, explain_token
from depository.store._backend import BlobBackend
from depository.store._engine import Txn
from depository.store._errors import (
    GovernanceLockedError,
    NotFoundError,
    QuotaError,
    StoreError,
    WriteOnceError,
)
from depository.store._model import Receipt, Token, token_secret_hash
from depository.store._prepared import PreparedPut


def apply_put(txn: Txn, pp: PreparedPut, *, blobs: BlobBackend, removed: set[str],
              after_put: Callable[[str], None] | None) -> Receipt | StoreError:
    """Append a prepared put, or refuse it (lock, write-once, quota, disposed bytes).

    ``removed``: blob files disposals removed (writer-owned); ``after_put(artifact_id)``
    runs once the put commits (Object Lock: hold it if a hold covers it).
    """
    return apply_puts(txn, [pp], blobs=blobs, removed=removed, after_put=after_put)[0]


def apply_puts(txn: Txn, pps: Sequence[PreparedPut], *, blobs: BlobBackend,
               removed: set[str], after_put: Callable[[str], None] | None
               ) -> list[Receipt | StoreError]:
    """:func:`apply_put` for each put in order, as if one after the other; the records and
    rows of the accepted ones are built together (one native call, see
    ``Txn.materialize``)."""
    decided = [_decide(txn, pp, blobs, removed, after_put) for pp in pps]
    txn.materialize()
    now, pending = txn.now_text, txn.pending
    out: list[Receipt | StoreError] = []
    for pp, res in zip(pps, decided, strict=True):
        if res is None:
            row = pending[pp.aid]
            res = Receipt(pp.aid, pp.prod.id, pp.name, pp.sha256, pp.size, row[2], row[5],
                          now, pp.retain)
        out.append(res)
    return out


def _decide(txn: Txn, pp: PreparedPut, blobs: BlobBackend, removed: set[str],
            after_put: Callable[[str], None] | None) -> Receipt | StoreError | None:
    """The refusal or duplicate receipt for ``pp``, or None once it is accepted (its
    sequence number reserved, see ``Txn.reserve_put``)."""
    prod, name, aid, sha = pp.prod, pp.name, pp.aid, pp.sha256
    if txn.state.locked:
        return GovernanceLockedError.of(txn.state.locked)
    denied = txn.refusal(pp.actor, "artifact.put", prod.id)  # the token, before write-once
    if denied is not None:
        return denied
    # Write-once: the id index (committed rows) and this transaction's own puts (the
    # same name twice in one batch). A retried batch starts a fresh transaction.
    row = txn.lookup(aid)
    if row is not None:
        if row[5] is None:  # a committed row decides only if the log explains it
            try:
                explain_artifact(aid, row[0], row[2], txn.db.leaf)
            except UnexplainedRowError as exc:
                return txn.tampered(str(exc))
        if row[0] == sha:
            lh = row[5]
            if lh is None:
                lh = txn.db.leaf_hash(row[2])
            return Receipt(aid, prod.id, name, row[0], row[1], row[2], bytes(lh),
                           row[3], row[4], duplicate=True)
        txn.append("artifact.refused", pp.actor, prod.id, {
            "artifact_id": aid, "name": name, "sha256": sha, "size": pp.size,
            "reason": "write-once: the name already holds different bytes",
            "existing_sha256": row[0],
        })
        return WriteOnceError(
            f"artifact {name!r} in product {prod.id!r} already exists with different "
            f"bytes (sha256 {row[0]}); artifacts are write-once: store the new version "
            "under a new name"
        )
    used = txn.state.usage.setdefault(prod.id, [0, 0])
    if used[0] + pp.size > prod.quota_bytes:
        return QuotaError(
            f"product {prod.id!r} storage quota exceeded: {used[0]} of {prod.quota_bytes} "
            f"bytes used, this artifact needs {pp.size}",
            kind="bytes", used=used[0], limit=prod.quota_bytes,
        )
    if used[1] + 1 > prod.quota_artifacts:
        return QuotaError(
            f"product {prod.id!r} artifact-count quota exceeded: {used[1]} of "
            f"{prod.quota_artifacts} artifacts",
            kind="artifacts", used=used[1], limit=prod.quota_artifacts,
        )
    inline = pp.data is not None
    if not inline and sha in removed and blobs.exists(sha):
        removed.discard(sha)  # uploaded again after the disposal
    if not inline and (sha in txn.removing or sha in removed):
        # The same bytes were just disposed of under another artifact; the upload found
        # the old file and kept none of its own. Nothing is stored: the client retries.
        return StoreError(
            f"{name!r} in product {prod.id!r}: identical bytes were disposed of while "
            "this upload was in flight; nothing was stored, retry the upload"
        )
    seq = txn.reserve_put(pp)
    txn.pending[aid] = (sha, pp.size, seq, txn.now_text, pp.retain, b"")
    used[0] += pp.size
    used[1] += 1
    if after_put is not None and not inline:
        txn.after_commit.append(lambda: after_put(aid))
    return None


def issue_token(txn: Txn, *, role: str, actor: str, product: str | None,
                expires_text: str | None, note: str) -> tuple[str, Token]:
    """Issue a token: its secret is made here, only its SHA-256 is recorded."""
    tid = f"tok-{txn.next_seq}"
    secret = f"dep_{tid}_{secrets.token_urlsafe(32)}"
    digest = token_secret_hash(secret)
    seq = txn.append("token.issue", actor, product, {
        "token_id": tid, "role": role, "expires": expires_text,
        "secret_sha256": digest, "note": note,
    })
    txn.db.add_token(tid, role, product, expires_text, digest, note, actor, seq,
                     txn.now_text)
    txn.authority.issued(tid, role, product, expires_text, seq)
    return secret, Token(tid, role, product, expires_text, note, actor, seq, txn.now_text)


def revoke_token(txn: Txn, token_id: str, *, reason: str, actor: str) -> int | StoreError:
    """Revoke a live token, or refuse (unknown, already revoked, or a row the log does
    not explain)."""
    row = txn.db.token_row(token_id)
    if row is None:
        return NotFoundError(f"no token {token_id!r}; list them with `depository token list`")
    try:
        grant = explain_token(token_id, row, txn.db.leaf)
    except UnexplainedRowError as exc:
        return txn.tampered(str(exc))
    if grant.revoked is not None:
        return StoreError(f"token {token_id} is already revoked")
    seq = txn.append("token.revoke", actor, grant.product,
                     {"token_id": token_id, "reason": reason})
    txn.db.add_token_revoke(token_id, reason, actor, seq, txn.now_text)
    txn.authority.revoked(grant, seq)
    return seq
