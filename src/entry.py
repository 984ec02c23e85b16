"""Cloudflare Worker adapter: turns what workerd passes into the app's types and hands over to the shared app."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

try:
    import js  # type: ignore[import-not-found]
    from pyodide.ffi import to_js  # type: ignore[import-not-found]
    from workers import WorkerEntrypoint  # type: ignore[import-not-found]
except ImportError:  # CPython (tests): `js`, `pyodide` and `workers` exist only inside the Workers runtime.
    js = None
    to_js = None

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
from core.logging import Logger
from core.ratelimit import SlidingWindowLimiter, WorkersBindingLimiter
from db.d1 import D1Database

D1_BINDING = "TATTLEHASH_DB"
_BODILESS = frozenset({"GET", "HEAD"})


class WorkerVars:
    """Vars and secrets read by name from the runtime's env wrapper.

    Observed in workerd: the SDK wraps `env`, `js.Object.keys(env)` is `[]`, and `getattr(env, NAME)` works
    (AttributeError when unset). Bindings are JS objects, not strings, so they never read as a value.
    """

    def __init__(self, js_env: Any) -> None:
        self._js_env = js_env
        # One per request: each read through the SDK's wrapper crosses into JS, and a request reads some names often.
        self._read: dict[str, str | None] = {}

    def get(self, name: str, /) -> str | None:
        try:
            return self._read[name]
        except KeyError:
            value = getattr(self._js_env, name, None)
            found = self._read[name] = value if isinstance(value, str) else None
            return found


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
    method = str(js_request.method)
    # A JS Headers object iterates as [name, value] pairs; names come lower-cased, repeats comma-joined.
    if js is not None:
        # In the runtime, one call builds a plain object of them (same pairs): not one FFI hop per header.
        headers = {
            str(name).lower(): str(value) for name, value in js.Object.fromEntries(js_request.headers).to_py().items()
        }
    else:
        headers = {str(name).lower(): str(value) for name, value in js_request.headers}
    # A GET or HEAD request has no body in the Fetch API (its constructor refuses one): nothing to await.
    body = b"" if method.upper() in _BODILESS else await read_body(js_request)
    return Request(
        method=method,
        path=url.path or "/",
        query_string=url.query,
        headers=headers,
        body=body if body is not None else b"",
        body_unreadable=body is None,
        client_ip=headers.get("cf-connecting-ip", ""),
    )


def to_runtime_response(response: Response) -> Any:
    """The JS Response itself (the SDK passes a JS object through): its workers.Response wrapper costs ~0.4 ms."""
    if js is None:
        return response
    # Headers as [name, value] pairs (JS `new Headers(...)` takes them); an empty body is null (no body at all).
    init = to_js(
        {"status": response.status, "headers": [[name, value] for name, value in response.headers.items()]},
        dict_converter=js.Object.fromEntries,
    )
    return js.Response.new(to_js(response.body) if response.body else None, init)


# One per isolate: built once at import (no I/O, clocks or randomness), so the deploy-time snapshot holds them.
APP: App = build_app()
BLOCK_CACHE = BlockCache()


def console_log(line: str) -> None:
    """console.log directly: where print() ends up in workerd, without the stdout stream (~0.7 ms a line there)."""
    # Looked up per call: no JS object is held from import time (the deploy snapshot keeps Python state only).
    js.console.log(line)


LOGGER = Logger(console_log) if js is not None else Logger()
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
        logger=LOGGER,
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
