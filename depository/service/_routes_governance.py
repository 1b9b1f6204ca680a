"""Governance routes: legal holds, retention extensions, the governance lock, tokens."""

from __future__ import annotations

import functools

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from depository.service import _auth
from depository.service._auth import ADMIN, AUDITOR, LEGAL
from depository.service._context import AppContext
from depository.service._http import artifact_by_id, json_response
from depository.service._params import HOLD_IDS_MAX, json_body, str_field, time_param
from depository.service._problems import Problem
from depository.store import ROLES, NotFoundError, StoreError, parse_time


# ---------------------------------------------------------- holds, retention
async def list_holds(request: Request, ctx: AppContext) -> Response:
    p = ctx.principal(request)
    _auth.require_role(p, (LEGAL, ADMIN, AUDITOR), "list holds")
    include = request.query_params.get("all") in ("1", "true")
    holds = await run_in_threadpool(functools.partial(ctx.store.holds,
                                                      include_released=include))
    if p.product is not None:
        holds = [h for h in holds if h.product == p.product]
    return json_response({"holds": [h.to_json() for h in holds]})


async def place_hold(request: Request, ctx: AppContext) -> Response:
    p = ctx.principal(request)
    _auth.require_role(p, (LEGAL, ADMIN), "place holds")
    body = await json_body(request)
    matter = str_field(body, "matter", max_len=256)
    reason = str_field(body, "reason")
    assert matter is not None and reason is not None
    ids = body.get("artifact_ids")
    product = body.get("product")
    if ids is not None and (not isinstance(ids, list) or not ids
                            or len(ids) > HOLD_IDS_MAX
                            or not all(isinstance(i, str) for i in ids)):
        raise Problem("invalid-body", f"artifact_ids must be a list of 1-{HOLD_IDS_MAX} "
                      "artifact id strings", field="body:artifact_ids")
    if product is not None and not isinstance(product, str):
        raise Problem("invalid-body", "product must be a string", field="body:product")
    if (ids is None) == (product is None):
        raise Problem("invalid-body", "give either artifact_ids or product (with "
                      "optional from/to)", field="body")
    since = time_param(str_field(body, "from", required=False, max_len=64),
                       "body:from")
    until = time_param(str_field(body, "to", required=False, max_len=64), "body:to")
    if ids is not None:
        if since or until:
            raise Problem("invalid-body", "from/to apply only to a product hold",
                          field="body:from")
        for aid in ids:
            artifact_by_id(ctx, p, aid)
    else:
        assert isinstance(product, str)
        if p.product is not None and product != p.product:
            raise Problem("not-found", f"no product {product!r} visible to this token",
                          field="body:product")
        if product not in ctx.store.config.products:
            raise Problem("unknown-product", f"unknown product {product!r}",
                          field="body:product")
    hold = await run_in_threadpool(functools.partial(
        ctx.store.place_hold, matter=matter, reason=reason, actor=p.actor,
        artifact_ids=ids or (), product=product if ids is None else None,
        since=parse_time(since) if since else None,
        until=parse_time(until) if until else None))
    return json_response(hold.to_json(), 201)


async def release_hold(request: Request, ctx: AppContext) -> Response:
    p = ctx.principal(request)
    _auth.require_role(p, (LEGAL, ADMIN), "release holds")
    hold_id = request.path_params["hold_id"]
    body = await json_body(request)
    reason = str_field(body, "reason")
    assert reason is not None
    holds = await run_in_threadpool(functools.partial(ctx.store.holds, include_released=True))
    match = [h for h in holds if h.id == hold_id
             and (p.product is None or h.product == p.product)]
    if not match:
        raise Problem("not-found", f"no hold {hold_id!r}", field="path:hold_id")
    idx = await run_in_threadpool(functools.partial(
        ctx.store.release_hold, hold_id, reason=reason, actor=p.actor))
    return json_response({"hold_id": hold_id, "released": True, "log_index": idx})


async def extend_retention(request: Request, ctx: AppContext) -> Response:
    p = ctx.principal(request)
    _auth.require_role(p, (LEGAL, ADMIN), "extend retention")
    art = artifact_by_id(ctx, p, request.path_params["artifact_id"])
    body = await json_body(request)
    until_text = time_param(str_field(body, "until", max_len=64), "body:until")
    reason = str_field(body, "reason")
    assert until_text is not None and reason is not None
    idx = await run_in_threadpool(functools.partial(
        ctx.store.extend_retention, art.product, art.id, parse_time(until_text),
        actor=p.actor, reason=reason))
    return json_response({"artifact_id": art.id, "retain_until": until_text, "log_index": idx})


# -------------------------------------------------------------- governance
async def governance(request: Request, ctx: AppContext) -> Response:
    _auth.require_role(ctx.principal(request), (ADMIN, AUDITOR), "read governance")
    return json_response(await run_in_threadpool(ctx.store.governance_status))


async def governance_change(request: Request, ctx: AppContext) -> Response:
    p = ctx.principal(request)
    action = request.path_params["action"]
    if action not in ("lock", "unlock"):
        raise Problem("not-found", f"no governance action {action!r}",
                      field="path:action")
    _auth.require_role(p, (ADMIN,), f"{action} the ctx.store")
    body = await json_body(request)
    reason = str_field(body, "reason")
    assert reason is not None
    if action == "lock":
        idx = await run_in_threadpool(functools.partial(
            ctx.store.lock, reason, check="manual", actor=p.actor))
    else:
        idx = await run_in_threadpool(functools.partial(
            ctx.store.unlock, reason=reason, actor=p.actor))
    return json_response({"locked": action == "lock", "log_index": idx})


# ------------------------------------------------------------------ tokens
async def list_tokens(request: Request, ctx: AppContext) -> Response:
    _auth.require_role(ctx.principal(request), (ADMIN,), "list tokens")
    toks = await run_in_threadpool(ctx.store.tokens)
    return json_response({"tokens": [t.to_json() for t in toks]})


async def create_token(request: Request, ctx: AppContext) -> Response:
    p = ctx.principal(request)
    _auth.require_role(p, (ADMIN,), "create tokens")
    body = await json_body(request)
    role = body.get("role")
    if role not in ROLES:
        raise Problem("invalid-body", f"role must be one of {', '.join(ROLES)}",
                      field="body:role")
    product = str_field(body, "product", required=False, max_len=64)
    if product is not None and product not in ctx.store.config.products:
        raise Problem("invalid-body", f"unknown product {product!r}",
                      field="body:product")
    expires_text = time_param(str_field(body, "expires", required=False, max_len=64),
                              "body:expires")
    note = str_field(body, "note", required=False, max_len=1024) or ""
    try:
        secret, tok = await run_in_threadpool(functools.partial(
            ctx.store.create_token, role=role, actor=p.actor, product=product,
            expires=parse_time(expires_text) if expires_text else None, note=note))
    except StoreError as exc:
        raise Problem("invalid-body", str(exc), field="body") from exc
    ctx.auth.invalidate()
    return json_response(tok.to_json() | {"secret": secret}, 201)


async def revoke_token(request: Request, ctx: AppContext) -> Response:
    p = ctx.principal(request)
    _auth.require_role(p, (ADMIN,), "revoke tokens")
    body = await json_body(request)
    reason = str_field(body, "reason")
    assert reason is not None
    tid = request.path_params["token_id"]
    try:
        idx = await run_in_threadpool(functools.partial(
            ctx.store.revoke_token, tid, reason=reason, actor=p.actor))
    except NotFoundError:
        raise Problem("not-found", f"no token {tid!r}", field="path:token_id") from None
    finally:
        ctx.auth.invalidate()
    return json_response({"token_id": tid, "revoked": True, "log_index": idx})
