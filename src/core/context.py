"""What handlers and jobs get to work with: config, database, clock, logger, outbound HTTP, deferral."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

import httpx

from core.clock import Clock, SystemClock
from core.config import Env
from core.logging import Logger

if TYPE_CHECKING:
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
class _SharedHttp:
    """The outbound client, shared by a Services and every per-request copy of it (see with_db)."""

    client: httpx.AsyncClient | None = None


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
    _http: _SharedHttp = field(default_factory=_SharedHttp, repr=False)

    def now(self) -> datetime:
        return self.clock.now()

    def with_db(self, db: Database) -> Services:
        """The same services over another database (a request's D1 session); the HTTP client is shared."""
        # A shallow copy of the fields, neither dataclasses.replace (re-runs __init__) nor copy.copy (goes through
        # __reduce_ex__): this runs on every request.
        copied = object.__new__(type(self))
        copied.__dict__.update(self.__dict__)
        copied.db = db
        return copied

    @property
    def http(self) -> httpx.AsyncClient:
        """The outbound HTTP client (RPC, webhooks, email, SMS), created on first use, not at import."""
        if self._http.client is None:
            if self.http_factory is not None:
                self._http.client = self.http_factory()
            else:
                self._http.client = httpx.AsyncClient(follow_redirects=False)
        return self._http.client


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
