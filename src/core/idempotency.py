"""Idempotency-Key: a key is claimed in the same D1 batch as its action's write, so a retry either replays
the answer of the action that committed or runs the action for the first time; never "stuck in progress".

- The key's row is read in the auth lookup's batch (`with_key_lookup` wraps the route's Preload).
- A fresh row for the same request replays: its stored bytes, or, when the answer was never stored (the
  process died between commit and answer), the answer rebuilt from the resource the action acted on.
  A fresh row for another request is 409 E9009.
- Otherwise the action runs over a `KeyClaim` database: the first batch that writes carries the claim, so
  the claim commits, or rolls back, with the write. Two requests racing with one key: the loser's batch
  fails on the key's PRIMARY KEY, rolls back whole, and the loser replays the winner.
- Nothing is reserved before the write, so a request that died before committing leaves nothing behind:
  its retry runs at once (there is no lease to wait out). Errors (4xx, 5xx) are not stored either.
- Keys expire KEY_TTL after their claim: the scheduled job deletes them, and an expired row is replaced.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from core import idempotency_store
from core.auth import Caller, Preload
from core.clock import format_time
from core.config import Env
from core.context import RequestContext, Services
from core.errors import ApiError
from core.http import Request, Response
from core.idempotency_store import StoredKey
from db.port import ConstraintError, Database, QueryResult, Statement, writes

MAX_KEY_LENGTH = 255
HEADER = "idempotency-key"
KEY_TTL = timedelta(hours=24)
REPLAYED_HEADER = "idempotent-replayed"

Rebuild = Callable[[str], Awaitable[Response]]


def _request_hash(request: Request) -> str:
    material = f"{request.method} {request.path}\n".encode() + request.body
    return hashlib.sha256(material).hexdigest()


def _key(request: Request) -> str:
    """The request's key ("" for none); 400 E9004 when it is too long to be one."""
    key = request.header(HEADER).strip()
    if len(key) > MAX_KEY_LENGTH:
        raise ApiError(
            "E9004",
            details={"fields": [{"field": "Idempotency-Key", "message": "at most 255 characters", "type": "too_long"}]},
        )
    return key


def with_key_lookup(builder: Preload | None) -> Preload:
    """The route's Preload plus, last, the caller's row for the request's Idempotency-Key (when it has one)."""

    def build(env: Env, db: Database, request: Request, now: datetime, caller: Caller) -> Sequence[Statement]:
        statements = list(builder(env, db, request, now, caller)) if builder is not None else []
        key = request.header(HEADER).strip()
        # A Preload must not raise: a key too long to be valid is refused by idempotent(), not here.
        if key and len(key) <= MAX_KEY_LENGTH:
            statements.append(idempotency_store.lookup_statement(db, caller, key))
        return statements

    return build


class KeyClaim:
    """The request's database, with the key's claim appended to the first batch that writes."""

    def __init__(self, inner: Database, claim: list[Statement]) -> None:
        self._inner = inner
        self._claim = claim
        self.committed = False

    def prepare(self, sql: str) -> Statement:
        return self._inner.prepare(sql)

    async def batch(self, statements: Sequence[Statement]) -> list[QueryResult]:
        if self.committed or not any(writes(statement) for statement in statements):
            return await self._inner.batch(statements)
        # The claim goes first: a key claimed meanwhile fails the batch before any of the action's writes.
        results = await self._inner.batch([*self._claim, *statements])
        self.committed = True
        return results[len(self._claim) :]

    def with_session(self, constraint_or_bookmark: str | None = None) -> Database:
        return self._inner.with_session(constraint_or_bookmark)

    def bookmark(self) -> str | None:
        return self._inner.bookmark()


async def _stored_key(ctx: RequestContext, user_id: str, key: str) -> StoredKey | None:
    """The key's row from the auth batch (taken off the principal's preloaded results), else read."""
    principal = ctx.principal
    if principal is not None and principal.preloaded:
        ctx.principal = replace(principal, preloaded=principal.preloaded[:-1])
        return idempotency_store.stored_from(principal.preloaded[-1])
    return await idempotency_store.load(ctx.db, user_id, key)


async def _replay(stored: StoredKey, rebuild: Rebuild) -> Response:
    if stored.response_body is not None:
        response = Response(
            stored.response_status or 200, stored.response_body.encode(), {"content-type": "application/json"}
        )
    else:
        # Committed, but the process stopped before the answer was stored: answer from the resource.
        if stored.resource_id is None:
            raise ApiError("E9009", "This Idempotency-Key's request committed, but its answer cannot be rebuilt")
        response = await rebuild(stored.resource_id)
        response.status = stored.response_status or response.status
    response.headers[REPLAYED_HEADER] = "true"
    return response


def _fresh(stored: StoredKey | None, now: datetime) -> StoredKey | None:
    """The row while its key lives; an expired one counts as none (its claim replaces it)."""
    return stored if stored is not None and stored.created_at >= format_time(now - KEY_TTL) else None


async def idempotent(
    request: Request,
    ctx: RequestContext,
    handler: Callable[[], Awaitable[Response]],
    *,
    success_status: int,
    resource_id: str,
    rebuild: Rebuild,
) -> Response:
    """Run `handler` at most once per (user, key), its claim committed with its write (see the module doc).

    `resource_id` names what the action acts on (the challenge it creates or changes) and `rebuild` answers
    from it, for a replay whose stored answer was lost.
    """
    key = _key(request)
    principal = ctx.principal
    user_id = principal.user_id if principal else None
    if not key or user_id is None:
        return await handler()
    fingerprint = _request_hash(request)
    now = ctx.now()
    stored = _fresh(await _stored_key(ctx, user_id, key), now)
    if stored is not None:
        if stored.request_hash != fingerprint:
            raise ApiError("E9009")
        return await _replay(stored, rebuild)

    services: Services = ctx.services
    claim = KeyClaim(
        services.db,
        idempotency_store.claim_statements(
            services.db,
            user_id=user_id,
            key=key,
            route=ctx.route.path,
            request_hash=fingerprint,
            status=success_status,
            resource_id=resource_id,
            now=now,
            expired_before=now - KEY_TTL,
        ),
    )
    ctx.services = services.with_db(claim)
    try:
        response = await handler()
    except (ApiError, ConstraintError):
        # Lost a race for the key (or the race the key's action guards): the winner's answer, if it won.
        winner = _fresh(await idempotency_store.load(services.db, user_id, key), now)
        if winner is None or claim.committed:
            raise
        if winner.request_hash != fingerprint:
            raise ApiError("E9009") from None
        return await _replay(winner, rebuild)
    finally:
        ctx.services = services
    if claim.committed and response.status == success_status:
        body = response.body.decode()
        services.defer(_store_answer(services.db, user_id, key, fingerprint, body))
    return response


async def _store_answer(db: Database, user_id: str, key: str, request_hash: str, body: str) -> Any:
    return await idempotency_store.answer_statement(db, user_id, key, request_hash, body).run()


async def expire_keys(services: Services) -> dict[str, int]:
    """The scheduled job: delete keys past KEY_TTL (bounded per run)."""
    return {"deleted": await idempotency_store.delete_expired(services.db, services.clock.now() - KEY_TTL)}
