"""HTTP handlers of /challenges: create, read, list, events, and the state-machine actions."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from challenges import creation, modes, store
from challenges.models import ChallengeCreate, StakeBody
from core.auth import Principal, require_user
from core.context import RequestContext
from core.errors import ApiError
from core.http import Request, Response
from core.idempotency import idempotent
from core.validation import page_limit

MAX_PAGE = 100


async def _respond(ctx: RequestContext, challenge_id: str, status: int = 200) -> Response:
    row = await store.load(ctx.db, challenge_id)
    assert row is not None
    return Response.json(await store.serialize(ctx.db, row), status)


async def create_challenge(request: Request, ctx: RequestContext) -> Response:
    principal = require_user(ctx.principal)
    body: ChallengeCreate = ctx.body

    async def run() -> Response:
        challenge_id = await creation.create(ctx.db, ctx.env, ctx.now(), principal.user_id or "", body)
        return await _respond(ctx, challenge_id, 201)

    return await idempotent(request, ctx, run)


async def get_challenge(request: Request, ctx: RequestContext) -> Response:
    challenge, _ = await store.load_visible(ctx.db, request.path_params["challenge_id"], ctx.principal)
    return Response.json(await store.serialize(ctx.db, challenge))


def _enum_param(query: dict[str, str], name: str, allowed: tuple[str, ...]) -> str | None:
    value = query.get(name)
    if value is None or value == "":
        return None
    if value not in allowed:
        raise ApiError(
            "E9004", details={"fields": [{"field": name, "message": f"must be one of {list(allowed)}", "type": "enum"}]}
        )
    return value


async def list_challenges(request: Request, ctx: RequestContext) -> Response:
    principal = require_user(ctx.principal)
    query = request.query
    # page_limit refuses "5²": str.isdigit() accepts it, int() does not (a 500 found by fuzzing).
    limit = page_limit(query.get("limit", "20"), maximum=MAX_PAGE)
    rows, next_cursor = await store.list_for_user(
        ctx.db,
        principal.user_id or "",
        status=_enum_param(query, "status", modes.STATUSES),
        mode=_enum_param(query, "mode", modes.MODES),
        limit=limit,
        cursor=query.get("cursor") or None,
    )
    return Response.json({"items": await store.serialize_many(ctx.db, rows), "next_cursor": next_cursor})


async def challenge_events(request: Request, ctx: RequestContext) -> Response:
    challenge, _ = await store.load_visible(ctx.db, request.path_params["challenge_id"], ctx.principal)
    return Response.json(
        {"history": await store.history(ctx.db, challenge["id"]), "events": await store.events(ctx.db, challenge["id"])}
    )


Action = Callable[..., Awaitable[None]]


def action_handler(
    action: Action, *, body_fields: tuple[str, ...] = ()
) -> Callable[[Request, RequestContext], Awaitable[Response]]:
    """Wrap a lifecycle action: load what the caller may see, run the action, answer with the new state."""

    async def handle(request: Request, ctx: RequestContext) -> Response:
        principal: Principal | None = ctx.principal
        if principal is None:
            raise ApiError("E9005")
        challenge, role = await store.load_visible(ctx.db, request.path_params["challenge_id"], principal)
        extra: list[Any] = [getattr(ctx.body, name) for name in body_fields]
        await action(ctx.services, challenge, role, principal, *extra)
        return await _respond(ctx, challenge["id"])

    return handle


async def stake(request: Request, ctx: RequestContext) -> Response:
    """Hold a stake; honours Idempotency-Key so a retried payment call never stakes twice."""
    from challenges import bonded

    principal = require_user(ctx.principal)
    body: StakeBody = ctx.body

    async def run() -> Response:
        challenge, role = await store.load_visible(ctx.db, request.path_params["challenge_id"], principal)
        await bonded.stake(
            ctx.services, challenge, role, principal, body.type, body.amount, body.currency_code, body.payment_reference
        )
        return await _respond(ctx, challenge["id"])

    return await idempotent(request, ctx, run)
