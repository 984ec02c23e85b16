"""The request pipeline both runtimes share: ids, limits, routing, flags, auth, validation, errors, logs."""

from __future__ import annotations

import re
import time
import traceback
from collections.abc import Callable, Sequence

from core import cors, ratelimit
from core.auth import PRELOAD, Authenticate, require_admin, require_user, route_preload
from core.context import RequestContext, Services
from core.errors import ApiError
from core.http import MAX_BODY_BYTES, Request, Response
from core.ids import new_id
from core.routing import Route, Router
from core.validation import validate_body
from db.port import FIRST_PRIMARY, FIRST_UNCONSTRAINED, Database, is_session_start

_SAFE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")
_BODY_METHODS = {"POST", "PUT", "PATCH"}
_WRITE_METHODS = _BODY_METHODS | {"DELETE"}
# D1 read replication: the session bookmark travels in this header, both ways (the name D1's docs use).
BOOKMARK_HEADER = "x-d1-bookmark"
_MAX_BOOKMARK_LENGTH = 128


def session_start(request: Request) -> str:
    """Where this request's D1 session starts: the caller's bookmark, else a constraint by method.

    A bookmark (from the caller's last response) makes every read see at least that state: its own writes.
    Without one, a read may go to any replica, and a write's reads go to the primary, so the checks made
    before writing see the latest state. A malformed value is refused (400) rather than sent to D1: workerd's
    binding forwards any string and keeps it as the session's bookmark, so it would come back poisoned.
    """
    value = request.header(BOOKMARK_HEADER).strip()
    if not value:
        return FIRST_PRIMARY if request.method in _WRITE_METHODS else FIRST_UNCONSTRAINED
    if len(value) > _MAX_BOOKMARK_LENGTH or not is_session_start(value):
        raise ApiError(
            "E9004",
            details={
                "fields": [
                    {
                        "field": "X-D1-Bookmark",
                        "message": "a bookmark from an earlier response, first-primary or first-unconstrained",
                        "type": "invalid",
                    }
                ]
            },
        )
    return value


class App:
    """Dispatches requests to the route table; never lets an exception escape as anything but E9001."""

    def __init__(
        self,
        routes: Sequence[Route],
        *,
        authenticate: Authenticate,
        after_write: Callable[[Services], None] | None = None,
    ) -> None:
        self.router = Router(routes)
        # Who is asking (accounts.credentials.resolve_principal): core knows no SQL of accounts.
        self.authenticate = authenticate
        # Called after each successful write (e.g. start delivering the events it recorded); must not raise.
        self.after_write = after_write

    async def handle(self, request: Request, services: Services) -> Response:
        started = time.perf_counter()
        caller_id = request.header("x-request-id")
        request.request_id = caller_id if _SAFE_REQUEST_ID.match(caller_id) else new_id()
        route_path = "-"
        session: Database | None = None
        try:
            if cors.is_preflight(request):
                response = cors.preflight(request, services.env, self.router.allowed_methods(request.path))
            else:
                match = self.router.match(request.method, request.path)
                route_path = match.route.path
                request.path_params = match.params
                # One D1 session per request: every query of the request (and work it defers) goes through it.
                session = services.db.with_session(session_start(request))
                response = await self._dispatch(request, match.route, services.with_db(session))
        except ApiError as error:
            if error.code in {"E9001", "E9002"}:
                error.details = {**error.details, "request_id": request.request_id}
            response = Response.error(error)
        except Exception as error:
            services.logger.error(
                "unhandled_exception",
                request_id=request.request_id,
                route=route_path,
                error_type=type(error).__name__,
                # The traceback names files and lines, never values: safe for the log, not for the caller.
                where=traceback.format_tb(error.__traceback__)[-3:],
            )
            response = Response.error(ApiError("E9001", details={"request_id": request.request_id}))
        if self.after_write is not None and request.method in _BODY_METHODS | {"DELETE"} and response.status < 400:
            self.after_write(services)
        if request.method == "HEAD":
            response.body = b""
        # Errors too: a failed request may still have read newer state than the caller's bookmark.
        bookmark = session.bookmark() if session is not None else None
        if bookmark:
            response.headers[BOOKMARK_HEADER] = bookmark
        response.headers["x-request-id"] = request.request_id
        response.headers.setdefault("x-content-type-options", "nosniff")
        response.headers.setdefault("cache-control", "no-store")
        cors.apply(request, response, services.env)
        services.logger.info(
            "request",
            request_id=request.request_id,
            method=request.method,
            route=route_path,
            status=response.status,
            duration_ms=round((time.perf_counter() - started) * 1000, 2),
        )
        return response

    async def _dispatch(self, request: Request, route: Route, services: Services) -> Response:
        if request.body_unreadable:
            raise ApiError("E9004", "The request body could not be read", {"field": "body"})
        if len(request.body) > MAX_BODY_BYTES:
            raise ApiError("E9012", details={"max_bytes": MAX_BODY_BYTES})
        now = services.clock.now()
        authorization = request.header("authorization")
        ctx = RequestContext(services, route, client_ip=request.client_ip, request_id=request.request_id)
        principal_error: ApiError | None = None
        # A public route without a flag has no use for the caller (no auth, no rollout bucket): whatever the
        # Authorization header holds, /health and /openapi.json answer the same, without a database read.
        if route.auth != "none" or route.flag is not None:
            try:
                # The route's own reads ride in the credential lookup's batch: one round trip for both.
                extra = route_preload(route.extra.get(PRELOAD), services.env, services.db, request, now)
                ctx.principal = await self.authenticate(services.env, services.db, authorization, now, extra)
            except ApiError as error:
                principal_error = error
        if route.flag is not None:
            subject = (ctx.principal.user_id if ctx.principal else None) or request.client_ip
            if not services.env.flag(route.flag, subject or ""):
                raise ApiError("E9010", f"This feature is disabled ({route.flag})", {"flag": route.flag})
        if principal_error is not None and route.auth != "none":
            raise principal_error
        if route.auth == "user":
            require_user(ctx.principal)
        elif route.auth == "any" and ctx.principal is None:
            raise ApiError("E9005")
        elif route.auth == "admin":
            require_admin(ctx.principal)
        limit_headers: dict[str, str] = {}
        if services.rate_limiter is not None and route.rate_limit:
            user_id = ctx.principal.user_id if ctx.principal else None
            limit_headers = await ratelimit.enforce(
                services.rate_limiter, services.env, route.rate_limit, user_id, request.client_ip, now.timestamp()
            )
        if route.body is not None:
            if request.method in _BODY_METHODS:
                ctx.body = validate_body(route.body, request.json())
        elif request.method in _BODY_METHODS and request.body.strip():
            request.json()  # still refuse a non-JSON content type or malformed JSON
        response = await route.handler(request, ctx)
        response.headers.update(limit_headers)
        return response
