"""Cloudflare Worker adapter: turns what workerd passes into the app's types and hands over to the shared app."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

try:
    from workers import Response as WorkersResponse  # type: ignore[import-not-found]
    from workers import WorkerEntrypoint  # type: ignore[import-not-found]
except ImportError:  # CPython (tests): the `workers` module exists only inside the Workers runtime.
    WorkersResponse = None

    class WorkerEntrypoint:  # type: ignore[no-redef]
        """Stand-in with the runtime's constructor shape, so the adapter can be imported by tests."""

        def __init__(self, ctx: Any = None, env: Any = None) -> None:
            self.ctx = ctx
            self.env = env


from api.jobs import run_scheduled
from api.routes import build_app
from chain.blockcache import BlockCache
from core.app import App
from core.config import Env
from core.context import Services
from core.http import Request, Response
from core.ratelimit import SlidingWindowLimiter, WorkersBindingLimiter
from db.d1 import D1Database

D1_BINDING = "TATTLEHASH_DB"


class WorkerVars:
    """Vars and secrets read by name from the runtime's env wrapper.

    Observed in workerd: the SDK wraps `env`, `js.Object.keys(env)` is `[]`, and `getattr(env, NAME)` works
    (AttributeError when unset). Bindings are JS objects, not strings, so they never read as a value.
    """

    def __init__(self, js_env: Any) -> None:
        self._js_env = js_env

    def get(self, name: str, /) -> str | None:
        value = getattr(self._js_env, name, None)
        return value if isinstance(value, str) else None


async def read_body(js_request: Any) -> bytes | None:
    """The whole body, or None when the runtime cannot give it (stream already used or broken)."""
    try:
        return bytes((await js_request.arrayBuffer()).to_bytes())
    except Exception:
        return None


async def to_request(request: Any) -> Request:
    """The app's Request from the runtime's; the client IP is the one Cloudflare vouches for.

    `request` is the SDK's `workers.Request`; its JS object is read directly, because the SDK's own
    `.headers` builds an `http.client.HTTPMessage` (a costly import) on every access.
    """
    js_request = getattr(request, "js_object", request)
    url = urlsplit(str(js_request.url))
    # A JS Headers object iterates as [name, value] pairs; names come lower-cased, repeats comma-joined.
    headers = {str(name).lower(): str(value) for name, value in js_request.headers}
    body = await read_body(js_request)
    return Request(
        method=str(js_request.method),
        path=url.path or "/",
        query_string=url.query,
        headers=headers,
        body=body if body is not None else b"",
        body_unreadable=body is None,
        client_ip=headers.get("cf-connecting-ip", ""),
    )


def to_runtime_response(response: Response) -> Any:
    if WorkersResponse is None:
        return response
    # A list of pairs goes to JS `new Headers(...)` as is; an empty body must be None (no body at all).
    return WorkersResponse(
        response.body or None, status=response.status, headers=list(response.headers.items()) or None
    )


# One per isolate: built once at import (no I/O, clocks or randomness), so the deploy-time snapshot holds them.
APP: App = build_app()
BLOCK_CACHE = BlockCache()
# Only used for a group whose [[ratelimits]] binding is missing: exact, but per isolate.
LOCAL_LIMITER = SlidingWindowLimiter()


def services_for(js_env: Any, ctx: Any) -> Services:
    def defer(work: Any) -> None:
        # The SDK lets waitUntil take a Python awaitable: the runtime keeps the isolate until it is done.
        ctx.waitUntil(work)

    return Services(
        env=Env(WorkerVars(js_env)),
        db=D1Database(getattr(js_env, D1_BINDING, None)),
        defer=defer,
        rate_limiter=WorkersBindingLimiter(js_env, LOCAL_LIMITER),
        block_cache=BLOCK_CACHE,
    )


class Default(WorkerEntrypoint):
    """The Worker: HTTP requests and cron triggers."""

    async def fetch(self, request: Any) -> Any:
        services = services_for(self.env, self.ctx)
        response = await APP.handle(await to_request(request), services)
        return to_runtime_response(response)

    async def scheduled(self, controller: Any, env: Any = None, ctx: Any = None) -> None:
        # The runtime passes None for env and ctx here; the entrypoint's own are the real ones.
        services = services_for(self.env, self.ctx)
        await run_scheduled(services, str(getattr(controller, "cron", "")))
