"""HTTP handlers of /challenges: create, read, list, events, and the state-machine actions."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from challenges import bonded, creation, modes, store
from challenges.models import ChallengeCreate, StakeBody
from challenges.store import Aggregate
from core.auth import PRELOAD, Caller, Principal, require_user
from core.config import Env
from core.context import RequestContext
from core.errors import ApiError
from core.http import Request, Response
from core.idempotency import idempotent, with_key_lookup
from core.ids import is_uuid4, new_id
from core.validation import page_limit
from db.port import Database, Statement

MAX_PAGE = 100


# -- reads that ride in the auth lookup's batch (core.auth.Preload): auth + the aggregate = one round trip ----


def preload_challenge(env: Env, db: Database, request: Request, now: datetime, caller: Caller) -> list[Statement]:
    """GET /challenges/{id}, its openings and every action: the visible aggregate's reads."""
    return store.visible_statements(db, request.path_params.get("challenge_id", ""), caller)


def preload_timeline(env: Env, db: Database, request: Request, now: datetime, caller: Caller) -> list[Statement]:
    """GET /challenges/{id}/events: the aggregate's reads with its history and events."""
    return store.visible_statements(db, request.path_params.get("challenge_id", ""), caller, timeline=True)


def preload_list(env: Env, db: Database, request: Request, now: datetime, caller: Caller) -> list[Statement]:
    """GET /challenges: the page's reads; none on a bad query (the handler then answers its 400 after auth)."""
    try:
        return store.list_statements(db, caller, **_list_query(request))
    except ApiError:
        return []


def _named_users(request: Request) -> list[str]:
    """The user ids a creation body names (counterparty_user_id, or counterparty as a user id)."""
    try:
        body = json.loads(request.body or b"{}")
    except (ValueError, RecursionError):
        # A preload must not raise: the body's own validation answers its 400 after auth.
        return []
    if not isinstance(body, dict):
        return []
    named = [body.get("counterparty_user_id"), body.get("counterparty")]
    return [value for value in named if isinstance(value, str) and is_uuid4(value)]


def preload_create(env: Env, db: Database, request: Request, now: datetime, caller: Caller) -> list[Statement]:
    """POST /challenges: whether the named counterparty exists (none named: nothing to read)."""
    users = _named_users(request)
    return [store.users_statement(db, users)] if users else []


CREATE_EXTRA: dict[str, Any] = {PRELOAD: with_key_lookup(preload_create)}
CHALLENGE_EXTRA: dict[str, Any] = {PRELOAD: preload_challenge}
STAKE_EXTRA: dict[str, Any] = {PRELOAD: with_key_lookup(preload_challenge)}
TIMELINE_EXTRA: dict[str, Any] = {PRELOAD: preload_timeline}
LIST_EXTRA: dict[str, Any] = {PRELOAD: preload_list}


async def _respond(ctx: RequestContext, challenge_id: str, after: Aggregate | None, status: int = 200) -> Response:
    """Answer with the state a write batch read back; only an action that wrote nothing reads again."""
    if after is None:
        after = await store.load(ctx.db, challenge_id)
        assert after is not None
    return Response.json(store.serialize(after), status)


async def create_challenge(request: Request, ctx: RequestContext) -> Response:
    principal = require_user(ctx.principal)
    body: ChallengeCreate = ctx.body
    # Known before the write, so an Idempotency-Key's claim (committed with it) can name it.
    challenge_id = new_id()

    async def run() -> Response:
        # The auth batch answered which named users exist; without it (admin, none named) create reads itself.
        caller = ctx.principal or principal
        known = store.known_users(caller.preloaded[0]) if caller.preloaded else None
        _, created = await creation.create(
            ctx.db, ctx.env, ctx.now(), principal.user_id or "", body, known, challenge_id=challenge_id
        )
        return await _respond(ctx, challenge_id, created, 201)

    return await idempotent(
        request, ctx, run, success_status=201, resource_id=challenge_id, rebuild=_rebuilder(ctx, 201)
    )


def _rebuilder(ctx: RequestContext, status: int) -> Callable[[str], Awaitable[Response]]:
    """Answers an Idempotency-Key replay whose stored answer was lost: the challenge as it stands."""

    async def rebuild(challenge_id: str) -> Response:
        return await _respond(ctx, challenge_id, None, status)

    return rebuild


async def get_challenge(request: Request, ctx: RequestContext) -> Response:
    aggregate = await store.load_visible(ctx.db, request.path_params["challenge_id"], ctx.principal)
    return Response.json(store.serialize(aggregate))


def _enum_param(query: dict[str, str], name: str, allowed: tuple[str, ...]) -> str | None:
    value = query.get(name)
    if value is None or value == "":
        return None
    if value not in allowed:
        raise ApiError(
            "E9004", details={"fields": [{"field": name, "message": f"must be one of {list(allowed)}", "type": "enum"}]}
        )
    return value


def _list_query(request: Request) -> dict[str, Any]:
    """The list's filters, page size and cursor from the query string; 400 E9004 on a bad one."""
    query = request.query
    return {
        "status": _enum_param(query, "status", modes.STATUSES),
        "mode": _enum_param(query, "mode", modes.MODES),
        # page_limit refuses "5²": str.isdigit() accepts it, int() does not (a 500 found by fuzzing).
        "limit": page_limit(query.get("limit", "20"), maximum=MAX_PAGE),
        "cursor": query.get("cursor") or None,
    }


async def list_challenges(request: Request, ctx: RequestContext) -> Response:
    principal = require_user(ctx.principal)
    page, next_cursor = await store.list_for_user(ctx.db, principal, **_list_query(request))
    return Response.json({"items": [store.serialize(aggregate) for aggregate in page], "next_cursor": next_cursor})


async def challenge_events(request: Request, ctx: RequestContext) -> Response:
    _, timeline = await store.load_timeline(ctx.db, request.path_params["challenge_id"], ctx.principal)
    return Response.json({"history": store.history_view(timeline), "events": timeline.events})


Action = Callable[..., Awaitable[Aggregate | None]]


def action_handler(
    action: Action, *, body_fields: tuple[str, ...] = ()
) -> Callable[[Request, RequestContext], Awaitable[Response]]:
    """Wrap a lifecycle action: load what the caller may see, run the action, answer with the new state."""

    async def handle(request: Request, ctx: RequestContext) -> Response:
        principal: Principal | None = ctx.principal
        if principal is None:
            raise ApiError("E9005")
        aggregate = await store.load_visible(ctx.db, request.path_params["challenge_id"], principal)
        extra: list[Any] = [getattr(ctx.body, name) for name in body_fields]
        after = await action(ctx.services, aggregate, principal, *extra)
        return await _respond(ctx, aggregate.id, after)

    return handle


async def stake(request: Request, ctx: RequestContext) -> Response:
    """Hold a stake; honours Idempotency-Key so a retried payment call never stakes twice."""
    require_user(ctx.principal)
    body: StakeBody = ctx.body
    challenge_id = request.path_params["challenge_id"]

    async def run() -> Response:
        # ctx.principal, not the one above: idempotent() took its own result off the preloaded reads.
        principal = require_user(ctx.principal)
        aggregate = await store.load_visible(ctx.db, challenge_id, principal)
        after = await bonded.stake(
            ctx.services, aggregate, principal, body.type, body.amount, body.currency_code, body.payment_reference
        )
        return await _respond(ctx, aggregate.id, after)

    return await idempotent(
        request, ctx, run, success_status=200, resource_id=challenge_id, rebuild=_rebuilder(ctx, 200)
    )
