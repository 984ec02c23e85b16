"""Idempotency-Key: the same key and body replay the stored response; the same key with another body is 409."""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable

from core.clock import format_time
from core.context import RequestContext
from core.errors import ApiError
from core.http import Request, Response
from db.port import ConstraintError

MAX_KEY_LENGTH = 255


def _request_hash(request: Request) -> str:
    material = f"{request.method} {request.path}\n".encode() + request.body
    return hashlib.sha256(material).hexdigest()


async def idempotent(request: Request, ctx: RequestContext, handler: Callable[[], Awaitable[Response]]) -> Response:
    """Run `handler` at most once per (user, key); 2xx and 4xx answers are replayed, 5xx may be retried."""
    key = request.header("idempotency-key").strip()
    user_id = ctx.principal.user_id if ctx.principal else None
    if not key or user_id is None:
        return await handler()
    if len(key) > MAX_KEY_LENGTH:
        raise ApiError(
            "E9004",
            details={"fields": [{"field": "Idempotency-Key", "message": "at most 255 characters", "type": "too_long"}]},
        )
    db = ctx.db
    fingerprint = _request_hash(request)
    try:
        await (
            db.prepare(
                "INSERT INTO idempotency_keys (user_id, idempotency_key, route, request_hash, created_at)"
                " VALUES (?, ?, ?, ?, ?)"
            )
            .bind(user_id, key, ctx.route.path, fingerprint, format_time(ctx.now()))
            .run()
        )
    except ConstraintError:
        stored = (
            await db.prepare(
                "SELECT request_hash, response_status, response_body FROM idempotency_keys"
                " WHERE user_id = ? AND idempotency_key = ?"
            )
            .bind(user_id, key)
            .first()
        )
        if stored is None or stored["request_hash"] != fingerprint:
            raise ApiError("E9009") from None
        if stored["response_status"] is None:
            raise ApiError("E9009", "A request with this Idempotency-Key is still in progress") from None
        return Response(
            int(stored["response_status"]),
            stored["response_body"].encode(),
            {"content-type": "application/json", "idempotent-replayed": "true"},
        )
    try:
        response = await handler()
    except ApiError as error:
        response = Response.error(error)
    except BaseException:
        await _forget(ctx, user_id, key)
        raise
    if response.status >= 500:
        await _forget(ctx, user_id, key)
        return response
    await (
        db.prepare(
            "UPDATE idempotency_keys SET response_status = ?, response_body = ? WHERE user_id = ? AND idempotency_key = ?"
        )
        .bind(response.status, response.body.decode(), user_id, key)
        .run()
    )
    return response


async def _forget(ctx: RequestContext, user_id: str, key: str) -> None:
    await (
        ctx.db.prepare("DELETE FROM idempotency_keys WHERE user_id = ? AND idempotency_key = ?")
        .bind(user_id, key)
        .run()
    )
