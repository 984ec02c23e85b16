"""Shared fixtures: a migrated SQLite database per test, services with a manual clock, an in-process client."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from accounts.users import issue_api_key
from chain.blockcache import BlockCache
from core.clock import ManualClock
from core.config import Env
from core.context import Services
from core.logging import Logger, MemoryLogSink
from core.ratelimit import SlidingWindowLimiter
from local.config import PROJECT_ROOT
from local.server import build_asgi, open_database
from tests.support.client import ApiClient
from tests.support.server import LiveServer
from tests.support.workerd import WorkerdServer

HMAC_SECRET = "test-hmac-secret-0123456789abcdef-0123"
ADMIN_TOKEN = "test-admin-token-not-a-real-secret"
MIGRATIONS = PROJECT_ROOT / "db" / "migrations"
# The real anvil chain fixtures (`anvil`, `chain`, `fresh_anvil`): started only by tests that ask for them.
pytest_plugins = ["tests.support.anvil"]

BASE_VARS = {
    "HMAC_SECRET": HMAC_SECRET,
    "ADMIN_TOKEN": ADMIN_TOKEN,
    "FF_GATEKEEPER_V2": "true",
    "FF_CHALLENGES": "true",
    "FF_FIRE_MODE": "true",
    "FF_ENFORCED_MODE": "true",
    "FF_WEBHOOKS": "true",
    "FF_NOTIFICATIONS": "true",
    "WALLET_CHALLENGE_TTL_SECONDS": "600",
    "SIWE_ALLOWED_DOMAINS": "tattlehash.test,localhost",
    "PUBLIC_BASE_URL": "https://tattlehash.test",
    # Real limits are tested in test_rate_limits.py; elsewhere they would only get in the way.
    "RATE_LIMIT_GATEKEEPER_PER_MINUTE": "1000000",
    "RATE_LIMIT_CHALLENGES_PER_MINUTE": "1000000",
    "RATE_LIMIT_WEBHOOKS_PER_MINUTE": "1000000",
    # Tests drive relay dispatch explicitly; test_relay_first_attempt.py covers the automatic first attempt.
    "RELAY_DISPATCH_AFTER_RESPONSE": "false",
    # No test may reach a public RPC provider: networks are served only by what a test configures.
    "RPC_PUBLIC_FALLBACKS": "false",
    # eth-mainnet stays usable for requirements, but any call to it fails fast on loopback.
    "RPC_URL_ETH_MAINNET": "http://127.0.0.1:9/",
}


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(datetime(2026, 11, 24, 12, 0, 0, tzinfo=UTC))


@pytest.fixture
def log_sink() -> MemoryLogSink:
    return MemoryLogSink()


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "d1.sqlite"


@pytest.fixture
def env_vars() -> dict[str, str]:
    """Per-test configuration; tests edit this dict before the services are built."""
    return dict(BASE_VARS)


@pytest.fixture
def services(db_path: Path, env_vars: dict[str, str], clock: ManualClock, log_sink: MemoryLogSink) -> Services:
    database = open_database(db_path, MIGRATIONS)
    return Services(
        env=Env(env_vars),
        db=database,
        clock=clock,
        logger=Logger(log_sink),
        rate_limiter=SlidingWindowLimiter(),
        block_cache=BlockCache(),
    )


@pytest.fixture
async def client(services: Services) -> AsyncIterator[ApiClient]:
    adapter = build_asgi(services)
    yield ApiClient(adapter)
    await adapter.drain()


@pytest.fixture
def make_user(services: Services) -> Callable[..., object]:
    """Creates a user with an API key; returns (user_id, api_key)."""

    async def make(email: str | None = None, display_name: str | None = None) -> tuple[str, str]:
        issued = await issue_api_key(services.db, services.clock.now(), email=email, display_name=display_name)
        return issued.user_id, issued.api_key

    return make


# The end-to-end suites run in both runtimes: CPython (uvicorn, as `make dev`) and workerd (as deployed).
RUNTIMES = ["uvicorn", "workerd"]
# Unlimited in the shared Worker (its tests share one client IP); test_workerd.py runs wrangler.toml's limits.
UNLIMITED = {name: 1_000_000 for name in ("RATE_LIMIT_GATEKEEPER", "RATE_LIMIT_CHALLENGES", "RATE_LIMIT_WEBHOOKS")}
# Read only by the CPython server (the SQLite adapter's injected latency): no reason for another Worker.
LOCAL_ONLY_VARS = frozenset({"LOCAL_D1_LATENCY_MS"})


class WorkerdPool:
    """One `wrangler dev` per distinct configuration, started on first use and stopped at the session's end."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.servers: dict[str, WorkerdServer] = {}

    def get(self, env_vars: dict[str, str], rate_limits: dict[str, int] | None = None) -> WorkerdServer:
        env_vars = {name: value for name, value in env_vars.items() if name not in LOCAL_ONLY_VARS}
        key = json.dumps([env_vars, rate_limits], sort_keys=True)
        if key not in self.servers:
            workdir = self.root / f"worker-{len(self.servers)}"
            self.servers[key] = WorkerdServer(workdir, env_vars, rate_limits=rate_limits).start()
        return self.servers[key]

    def stop(self) -> None:
        for server in self.servers.values():
            server.stop()


@pytest.fixture(scope="session")
def workerd_pool(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WorkerdPool]:
    pool = WorkerdPool(tmp_path_factory.mktemp("workerd"))
    yield pool
    pool.stop()


def assert_no_tracebacks(server: WorkerdServer, since: int) -> None:
    """workerd's log must show no Python exception escaping the Worker while a test ran."""
    escaped = server.tracebacks(since)
    assert not escaped, "Python exception in workerd:\n" + "\n".join(escaped[:20])


@pytest.fixture(params=RUNTIMES)
def live_server(request: pytest.FixtureRequest, tmp_path: Path, env_vars: dict[str, str]) -> Iterator[Any]:
    """The real server over real HTTP on 127.0.0.1, with this test's configuration, in each runtime."""
    if request.param == "uvicorn":
        server = LiveServer(tmp_path, env_vars).start()
        yield server
        server.stop()
        return
    worker = request.getfixturevalue("workerd_pool").get(env_vars, UNLIMITED)
    since = len(worker.logs())
    yield worker
    assert_no_tracebacks(worker, since)
