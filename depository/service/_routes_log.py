"""Log routes: checkpoints, entries, inclusion and consistency proofs (also an
artifact's), and C2SP tlog-tiles."""

from __future__ import annotations

from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from depository.service import _auth, _tiles
from depository.service._auth import ADMIN, AUDITOR, LEGAL
from depository.service._context import AppContext
from depository.service._http import (
    artifact_by_id,
    b64,
    json_response,
    json_response_off_loop,
    latest_checkpoint,
    text_response,
)
from depository.service._params import int_param
from depository.service._problems import Problem
from depository.store import NotFoundError

ENTRIES_MAX = 1000


async def log_checkpoint(request: Request, ctx: AppContext) -> Response:
    ctx.principal(request)
    _, note = latest_checkpoint(ctx)
    return text_response(note, cache="no-cache, max-age=1")


async def tiles_checkpoint(request: Request, ctx: AppContext) -> Response:
    if not ctx.public_tiles:
        ctx.principal(request)
    _, note = latest_checkpoint(ctx)
    return text_response(note, cache="no-cache, max-age=1")


async def tile(request: Request, ctx: AppContext) -> Response:
    try:
        ref = _tiles.parse_tile_path(request.path_params["path"])
    except _tiles.TilePathError as exc:
        raise Problem("invalid-parameter", str(exc), field="path:path") from None
    if ref.level is None:
        _auth.require_store_wide_reader(ctx.principal(request), "read log entry bundles")
    elif not ctx.public_tiles:
        ctx.principal(request)
    size, _ = latest_checkpoint(ctx)
    if not _tiles.available(ref, size):
        raise Problem("not-yet-available", f"{ref.path()} is not covered by the latest "
                      f"checkpoint (tree size {size})", field="path:path",
                      headers={"Retry-After": "1"})
    cache = "max-age=31536000, immutable"
    if ref.level is None:
        first = ref.index * _tiles.TILE_WIDTH
        leaves = await run_in_threadpool(ctx.reads.leaves, first, first + ref.width)
        try:
            data = _tiles.encode_bundle(leaves)
        except ValueError as exc:
            raise Problem("entry-too-large", str(exc), field="path:path") from None
    else:
        level, k0, k1 = _tiles.hash_range(ref)
        if level == 0:
            hashes = await run_in_threadpool(ctx.reads.leaf_hashes, k0, k1)
        else:
            hashes = await run_in_threadpool(ctx.reads.node_hashes, level, k0, k1)
        if len(hashes) != ref.width:  # pragma: no cover - the ctx.store keeps every node
            raise Problem("internal", f"{ref.path()}: stored tree nodes are missing")
        data = b"".join(hashes)
    return Response(data, media_type="application/octet-stream",
                    headers={"Cache-Control": cache})


async def log_entries(request: Request, ctx: AppContext) -> Response:
    _auth.require_store_wide_reader(ctx.principal(request), "read log entries")
    start = int_param(request, "start", default=0)
    assert start is not None
    end = int_param(request, "end", default=start + 100)
    assert end is not None
    if end < start or end - start > ENTRIES_MAX:
        raise Problem("invalid-parameter", f"end must be in [start, start + "
                      f"{ENTRIES_MAX}]", field="query:end")
    from depository.tlog.merkle import leaf_hash

    def page() -> dict[str, Any]:
        rows = list(ctx.store.log_entries(start, end))
        return {"start": start, "end": end, "size": ctx.store.size(), "entries": [
            {"index": i, "leaf": leaf.decode(), "leaf_hash": leaf_hash(leaf).hex()}
            for i, leaf in rows]}

    return await json_response_off_loop(page)


def inclusion_json(ctx: AppContext, index: int, size: int) -> dict[str, Any]:
    from depository.tlog.merkle import leaf_hash

    proof = ctx.store.inclusion_proof(index, size)
    leaf = next(iter(ctx.store.log_entries(index, index + 1)))[1]
    out: dict[str, Any] = {
        "index": index, "tree_size": size, "leaf": leaf.decode(),
        "leaf_hash": leaf_hash(leaf).hex(), "proof": [b64(h) for h in proof],
        "root": b64(ctx.store.root_at(size)), "checkpoint": None, "tlog_proof": None,
    }
    try:
        out["tlog_proof"] = ctx.store.proof_file(index, size).decode()
        out["checkpoint"] = ctx.store.checkpoint_at(size).decode()
    except NotFoundError:
        pass
    return out


def size_param(ctx: AppContext, request: Request, name: str, default: int) -> int:
    size = int_param(request, name, default=default, minimum=1)
    assert size is not None
    if size > ctx.store.size():
        raise Problem("invalid-parameter", f"{name} {size} is beyond the log "
                      f"(size {ctx.store.size()})", field=f"query:{name}")
    return size


async def inclusion(request: Request, ctx: AppContext) -> Response:
    p = ctx.principal(request)
    index = int_param(request, "index")
    if index is None:
        raise Problem("invalid-parameter", "index is required", field="query:index")
    cp_size, _ = latest_checkpoint(ctx)
    size = size_param(ctx, request, "size", cp_size)
    if index >= size:
        raise Problem("not-yet-available" if "size" not in request.query_params
                      else "invalid-parameter",
                      f"index {index} is not below tree size {size}", field="query:index")
    if not (p.store_wide and p.role in (AUDITOR, ADMIN, LEGAL)):
        # Product tokens may prove their own product's records only.
        rec = await run_in_threadpool(ctx.store.record, index)
        if rec.product != p.product:
            raise Problem("not-found", f"no record {index} visible to this token",
                          field="query:index")
    return json_response(await run_in_threadpool(inclusion_json, ctx, index, size))


async def artifact_proof(request: Request, ctx: AppContext) -> Response:
    p = ctx.principal(request)
    art = artifact_by_id(ctx, p, request.path_params["artifact_id"])
    cp_size, _ = latest_checkpoint(ctx)
    size = size_param(ctx, request, "size", cp_size)
    if art.log_index >= size:
        raise Problem("not-yet-available", f"the artifact's record {art.log_index} is "
                      f"not covered by tree size {size} yet",
                      headers={"Retry-After": "1"})
    return await json_response_off_loop(
        lambda: {"artifact_id": art.id, **inclusion_json(ctx, art.log_index, size)})


async def consistency(request: Request, ctx: AppContext) -> Response:
    ctx.principal(request)
    cp_size, _ = latest_checkpoint(ctx)
    first = int_param(request, "first", minimum=1)
    if first is None:
        raise Problem("invalid-parameter", "first is required", field="query:first")
    second = size_param(ctx, request, "second", cp_size)
    if first > second:
        raise Problem("invalid-parameter", f"first ({first}) must not exceed second "
                      f"({second})", field="query:first")

    def work() -> dict[str, Any]:
        return {"first": first, "second": second,
                "proof": [b64(h) for h in ctx.store.consistency_proof(first, second)],
                "first_root": b64(ctx.store.root_at(first)),
                "second_root": b64(ctx.store.root_at(second))}

    return json_response(await run_in_threadpool(work))
