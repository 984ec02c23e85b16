"""ASGI adapter: turns ASGI scopes into the app's Request, runs deferred work and the cron loop."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any

from api.jobs import run_scheduled
from core.app import App
from core.clock import OffsetClock
from core.context import Services
from core.http import MAX_BODY_BYTES, Request, Response
from local import devclock

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

SCHEDULED_PATH = "/cdn-cgi/handler/scheduled"


class AsgiAdapter:
    """One ASGI app around the shared dispatch; `cron_interval` starts the minute loop at startup; with a
    `dev_clock`, /dev/clock reads and moves it (local.devclock)."""

    def __init__(
        self,
        app: App,
        services: Services,
        *,
        cron_interval: float | None = None,
        dev_clock: OffsetClock | None = None,
    ) -> None:
        self.app = app
        self.services = services
        self.cron_interval = cron_interval
        self.dev_clock = dev_clock
        self._tasks: set[asyncio.Task[Any]] = set()
        self._cron_task: asyncio.Task[None] | None = None
        services.defer = self.defer

    def defer(self, work: Awaitable[Any]) -> None:
        """Run after the response, like ctx.waitUntil; failures are logged, never lost silently."""
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            self.services.logger.error("deferred_task_failed", error_type=type(task.exception()).__name__)

    async def drain(self) -> None:
        """Wait for deferred work to finish (tests, shutdown)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        body, too_large = await self._read_body(receive)
        headers = {key.decode("latin-1"): value.decode("latin-1") for key, value in scope.get("headers", [])}
        client = scope.get("client") or ("", 0)
        request = Request(
            method=scope["method"],
            path=scope["path"],
            query_string=scope.get("query_string", b"").decode("latin-1"),
            headers=headers,
            body=body,
            client_ip=str(client[0]),
        )
        if request.path == SCHEDULED_PATH:
            response = await self._scheduled(request)
        elif request.path == devclock.DEV_CLOCK_PATH and self.dev_clock is not None and not too_large:
            response = await devclock.handle(request, self.dev_clock)
        else:
            if too_large:
                # Signal the size without buffering the rest; the pipeline answers 413.
                request.body = b" " * (MAX_BODY_BYTES + 1)
            response = await self.app.handle(request, self.services)
        await send(
            {
                "type": "http.response.start",
                "status": response.status,
                "headers": [
                    (key.encode("latin-1"), value.encode("latin-1")) for key, value in response.headers.items()
                ],
            }
        )
        await send({"type": "http.response.body", "body": response.body})

    async def _read_body(self, receive: Receive) -> tuple[bytes, bool]:
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size <= MAX_BODY_BYTES:
                chunks.append(chunk)
            if not message.get("more_body", False):
                break
        return b"".join(chunks), size > MAX_BODY_BYTES

    async def _scheduled(self, request: Request) -> Response:
        """wrangler dev's URL for firing a cron by hand; local only (the Worker never routes it)."""
        cron = request.query.get("cron", "*/1 * * * *")
        report = await run_scheduled(self.services, cron)
        return Response.json({"cron": cron, "results": report.results, "failures": report.failures})

    async def _cron_loop(self) -> None:
        assert self.cron_interval is not None
        while True:
            await asyncio.sleep(self.cron_interval)
            await run_scheduled(self.services)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                if self.cron_interval:
                    self._cron_task = asyncio.ensure_future(self._cron_loop())
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self._cron_task is not None:
                    self._cron_task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await self._cron_task
                await self.drain()
                await send({"type": "lifespan.shutdown.complete"})
                return
