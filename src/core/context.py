"""What handlers and jobs get to work with: config, database, clock, logger, outbound HTTP, deferral."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from core.clock import Clock, SystemClock
from core.config import Env
from core.logging import Logger

if TYPE_CHECKING:
    import httpx

    from core.auth import Principal
    from core.routing import Route
    from db.port import Database

Deferrer = Callable[[Awaitable[Any]], None]


_background: set[asyncio.Future[Any]] = set()


def _run_in_background(task: Awaitable[Any]) -> None:
    # Keep a reference until done: the event loop holds tasks only weakly.
    future = asyncio.ensure_future(task)
    _background.add(future)
    future.add_done_callback(_background.discard)


@dataclass
class Services:
    """Long-lived dependencies of one app instance (one Worker isolate, one local server)."""

    env: Env
    db: Database
    clock: Clock = field(default_factory=SystemClock)
    logger: Logger = field(default_factory=Logger)
    # Work to finish after the response: ctx.waitUntil on Workers, a background task locally.
    defer: Deferrer = _run_in_background
    http_factory: Callable[[], httpx.AsyncClient] | None = None
    rate_limiter: Any = None
    # Newest block per network (chain.blockcache.BlockCache): lets a funds check pin its reads in one batch.
    block_cache: Any = None
    _http: httpx.AsyncClient | None = None

    def now(self) -> datetime:
        return self.clock.now()

    @property
    def http(self) -> httpx.AsyncClient:
        """The outbound HTTP client (RPC, webhooks, email, SMS), created on first use, not at import."""
        if self._http is None:
            if self.http_factory is not None:
                self._http = self.http_factory()
            else:
                import httpx

                self._http = httpx.AsyncClient(follow_redirects=False)
        return self._http


@dataclass
class RequestContext:
    """Per-request view: the services plus who is asking and the validated body."""

    services: Services
    route: Route
    principal: Principal | None = None
    body: Any = None
    client_ip: str = ""
    request_id: str = ""

    @property
    def env(self) -> Env:
        return self.services.env

    @property
    def db(self) -> Database:
        return self.services.db

    def now(self) -> datetime:
        return self.services.clock.now()
