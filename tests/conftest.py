"""Shared fixtures: a migrated SQLite database per test, services with a manual clock, an in-process client."""

from __future__ import annotations

import contextlib
import json
import threading
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
    "RATE_LIMIT_ACCOUNTS_PER_MINUTE": "1000000",
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

    async def make(
        email: str | None = None, display_name: str | None = None, phone: str | None = None
    ) -> tuple[str, str]:
        # Contacts given here are verified, as an operator's are (PATCH /me only makes them pending).
        issued = await issue_api_key(
            services.db, services.clock.now(), email=email, display_name=display_name, phone=phone
        )
        return issued.user_id, issued.api_key

    return make


def use_local_chain_only(env_vars: dict[str, str], rpc_url: str) -> dict[str, str]:
    """The configuration the chain-backed end-to-end suites share (in workerd, one Worker serves them all):
    only the local chain at `rpc_url`, webhooks to 127.0.0.1, the first attempt right after the response."""
    env_vars.update(
        RPC_URL_LOCAL=rpc_url,
        RPC_TIMEOUT_SECONDS="5",
        ALLOW_INSECURE_WEBHOOKS="true",
        RELAY_DISPATCH_AFTER_RESPONSE="true",
    )
    # A configured network with a dead endpoint answers 502 by design; these suites reach only the local chain.
    env_vars.pop("RPC_URL_ETH_MAINNET", None)
    return env_vars


# The end-to-end suites run in both runtimes: CPython (uvicorn, as `make dev`) and workerd (as deployed).
RUNTIMES = ["uvicorn", "workerd"]
# Unlimited in the shared Worker (its tests share one client IP); test_workerd.py runs wrangler.toml's limits.
UNLIMITED = {name: 1_000_000 for name in ("RATE_LIMIT_GATEKEEPER", "RATE_LIMIT_CHALLENGES", "RATE_LIMIT_WEBHOOKS")}
# Read only by the CPython server (the SQLite adapter's injected latency): no reason for another Worker.
LOCAL_ONLY_VARS = frozenset({"LOCAL_D1_LATENCY_MS"})


Launch = tuple[dict[str, str], dict[str, int] | None, bool]


class WorkerdPool:
    """One `wrangler dev` per distinct configuration, stopped at the session's end.

    Configurations known up front boot one after another in a background thread (on the second core, while
    the CPython tests run); any other starts on first use. get() waits until its Worker answers. Their local
    D1 is migrated once by `wrangler d1 migrations apply` and copied to each run.
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self.servers: dict[str, WorkerdServer] = {}
        self.migrated: WorkerdServer | None = None
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.booter: threading.Thread | None = None

    def launch(
        self, env_vars: dict[str, str], rate_limits: dict[str, int] | None = None, *, without_database: bool = False
    ) -> WorkerdServer:
        """Starts this configuration's Worker (once) without waiting for it to answer."""
        env_vars = {name: value for name, value in env_vars.items() if name not in LOCAL_ONLY_VARS}
        key = json.dumps([env_vars, rate_limits, without_database], sort_keys=True)
        with self.lock:
            if key not in self.servers:
                workdir = self.root / f"worker-{len(self.servers)}"
                server = WorkerdServer(workdir, env_vars, rate_limits=rate_limits, without_database=without_database)
                if not without_database:
                    server.copy_state_from(self._migrated())
                server.launch()
                self.servers[key] = server
            return self.servers[key]

    def get(
        self, env_vars: dict[str, str], rate_limits: dict[str, int] | None = None, *, without_database: bool = False
    ) -> WorkerdServer:
        """This configuration's Worker, ready to answer."""
        server = self.launch(env_vars, rate_limits, without_database=without_database)
        return server.wait_until_ready(expect_status=503 if without_database else 200)

    def boot_in_background(self, launches: list[Launch]) -> None:
        """Boots these configurations one at a time (each waits for the last to answer) without blocking."""

        def boot() -> None:
            for env_vars, rate_limits, without_database in launches:
                if self.stopping.is_set():
                    return
                server = self.launch(env_vars, rate_limits, without_database=without_database)
                # A Worker that fails to boot is reported by the get() of the test that needs it.
                with contextlib.suppress(Exception):
                    server.wait_until_ready(expect_status=503 if without_database else 200)

        self.booter = threading.Thread(target=boot, name="workerd-boot", daemon=True)
        self.booter.start()

    def _migrated(self) -> WorkerdServer:
        if self.migrated is None:
            self.migrated = WorkerdServer(self.root / "migrated", {})
            self.migrated.migrate()
        return self.migrated

    def stop(self) -> None:
        self.stopping.set()
        if self.booter is not None:
            self.booter.join()
        for server in self.servers.values():
            server.stop()


# Configurations known before any test runs, in the order the suites need them.
MISCONFIGURED_VARS = {name: value for name, value in BASE_VARS.items() if name != "HMAC_SECRET"}
# A per-IP gatekeeper limit small enough to exhaust quickly (tests/test_hostile_input.py).
SMALL_GATEKEEPER_LIMIT = {"RATE_LIMIT_GATEKEEPER": 3}


@pytest.fixture(scope="session")
def workerd_pool(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WorkerdPool]:
    pool = WorkerdPool(tmp_path_factory.mktemp("workerd"))
    yield pool
    pool.stop()


@pytest.fixture(scope="session", autouse=True)
def prelaunch_workers(request: pytest.FixtureRequest) -> None:
    """When the session runs any workerd test, the Workers of the fixed configurations start booting now."""
    if not any("workerd" in item.nodeid or item.path.name == "test_workerd.py" for item in request.session.items):
        return
    pool: WorkerdPool = request.getfixturevalue("workerd_pool")
    anvil_node = request.getfixturevalue("anvil")
    pool.boot_in_background(
        [
            (dict(BASE_VARS), UNLIMITED, False),
            (dict(BASE_VARS), None, False),  # wrangler.toml's own rate limits
            (use_local_chain_only(dict(BASE_VARS), anvil_node.url), UNLIMITED, False),
            (dict(BASE_VARS), SMALL_GATEKEEPER_LIMIT, False),
            (MISCONFIGURED_VARS, None, True),  # a deploy that forgot its D1 binding and HMAC_SECRET
        ]
    )


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
