"""Cloudflare Worker adapter: `fetch` and `scheduled` hand over to the shared app and job runner."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import urlsplit

try:
    from workers import Response as WorkersResponse  # type: ignore[import-not-found]
    from workers import WorkerEntrypoint  # type: ignore[import-not-found]
except ImportError:  # CPython (tests): the `workers` module exists only inside the Workers runtime.
    WorkersResponse = None

    class WorkerEntrypoint:  # type: ignore[no-redef]
        """Stand-in with the runtime's constructor shape, so the adapter can be driven by tests."""

        def __init__(self, ctx: Any = None, env: Any = None) -> None:
            self.ctx = ctx
            self.env = env


from core.config import Env
from core.context import Services
from core.http import Request, Response

D1_BINDING = "TATTLEHASH_DB"


class JsEnv(Mapping[str, str]):
    """Worker vars and secrets read by name from the JS env; bindings are not strings and are skipped."""

    def __init__(self, js_env: Any) -> None:
        self._js_env = js_env

    def __getitem__(self, name: str) -> str:
        value = getattr(self._js_env, name, None)
        if not isinstance(value, str):
            raise KeyError(name)
        return value

    def __iter__(self) -> Iterator[str]:
        try:
            from js import Object  # type: ignore[import-not-found]

            names = list(Object.keys(self._js_env))
        except ImportError:
            names = list(vars(self._js_env))
        return iter([name for name in names if isinstance(getattr(self._js_env, name, None), str)])

    def __len__(self) -> int:
        return sum(1 for _ in self)


def _header_pairs(headers: Any) -> list[tuple[str, str]]:
    if hasattr(headers, "items"):
        return [(str(key), str(value)) for key, value in headers.items()]
    return [(str(pair[0]), str(pair[1])) for pair in headers.entries()]


async def to_request(js_request: Any) -> Request:
    """The app's Request from the runtime's; the client IP is the one Cloudflare vouches for."""
    url = urlsplit(str(js_request.url))
    headers = dict(_header_pairs(js_request.headers))
    buffer = await js_request.arrayBuffer()
    body = buffer.to_bytes() if hasattr(buffer, "to_bytes") else bytes(buffer)
    return Request(
        method=str(js_request.method),
        path=url.path or "/",
        query_string=url.query,
        headers=headers,
        body=body,
        client_ip=headers.get("cf-connecting-ip", ""),
    )


def to_runtime_response(response: Response) -> Any:
    if WorkersResponse is None:
        return response
    return WorkersResponse(response.body, status=response.status, headers=response.headers)


_app: Any = None
_local_limiter: Any = None
_block_cache: Any = None


def shared_app() -> Any:
    """Built on first request rather than at import, keeping the deploy-time snapshot free of work."""
    global _app
    if _app is None:
        from api.routes import build_app

        _app = build_app()
    return _app


def services_for(js_env: Any, ctx: Any) -> Services:
    from db.d1 import D1Database

    def defer(work: Any) -> None:
        ctx.waitUntil(asyncio.ensure_future(work))

    global _local_limiter, _block_cache
    from chain.blockcache import BlockCache
    from core.ratelimit import SlidingWindowLimiter, WorkersBindingLimiter

    if _block_cache is None:
        # Per isolate, shared by its requests: a warm isolate pins funds checks in one RPC request.
        _block_cache = BlockCache()
    if _local_limiter is None:
        # Only used for a group whose [[ratelimits]] binding is missing: exact, but per isolate.
        _local_limiter = SlidingWindowLimiter()
    return Services(
        env=Env(JsEnv(js_env)),
        db=D1Database(getattr(js_env, D1_BINDING)),
        defer=defer,
        rate_limiter=WorkersBindingLimiter(js_env, _local_limiter),
        block_cache=_block_cache,
    )


class Default(WorkerEntrypoint):
    """The Worker: HTTP requests and cron triggers."""

    async def fetch(self, request: Any) -> Any:
        services = services_for(self.env, self.ctx)
        response = await shared_app().handle(await to_request(request), services)
        return to_runtime_response(response)

    async def scheduled(self, controller: Any, env: Any = None, ctx: Any = None) -> None:
        # The runtime passes None for env and ctx here; the entrypoint's own are the real ones.
        from api.jobs import run_scheduled

        services = services_for(self.env, self.ctx)
        await run_scheduled(services, str(getattr(controller, "cron", "")))
