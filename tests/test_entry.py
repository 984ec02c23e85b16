"""src/entry.py's Worker adapter, driven with fakes shaped as workerd was observed to behave.

Observed in workerd 1.20260426.1 (wrangler 4.86.0), and proven end to end by the [workerd] suites:
- `fetch` gets the SDK's `workers.Request`; its JS Request is `.js_object`, with `.url`, `.method`, `.headers`
  (a JS Headers: iterates as [name, value] pairs, names lower-case) and `await .arrayBuffer()` → `.to_bytes()`.
  The SDK Request itself has no `arrayBuffer` (calling it was the 500 of every request).
- `self.env` is the SDK's env wrapper: `getattr(env, NAME)` works and raises AttributeError for an unset name,
  while `js.Object.keys(env)` is [] — nothing can be listed, only read by name.
- D1 results convert (`to_py`) to {"success", "meta": {"changes", "last_row_id", …}, "results": [...]}.
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest

import entry
from db.sqlite import SqliteDatabase
from local.config import PROJECT_ROOT
from local.server import open_database
from tests.conftest import ADMIN_TOKEN, HMAC_SECRET
from tests.test_database import FakeD1Binding, JsNull


class FakeArrayBuffer:
    def __init__(self, data: bytes) -> None:
        self._data = data

    def to_bytes(self) -> bytes:
        return self._data


class FakeJsRequest:
    """The JS Request: header names lower-cased and repeats comma-joined, as a JS Headers object does."""

    def __init__(self, method: str, url: str, headers: dict[str, str] | None = None, body: bytes = b"") -> None:
        self.method, self.url, self._body = method, url, body
        self.headers = [[name.lower(), value] for name, value in (headers or {}).items()]
        self.body_used = False

    async def arrayBuffer(self) -> FakeArrayBuffer:
        if self.body_used:
            raise RuntimeError("TypeError: Body has already been used")
        self.body_used = True
        return FakeArrayBuffer(self._body)


class FakeSdkRequest:
    """The SDK's workers.Request: the JS object behind `.js_object`, and no `arrayBuffer` of its own."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.js_object = FakeJsRequest(*args, **kwargs)


class FakeEnvWrapper:
    """Read by name only: attributes resolve on access, nothing is listed (like `Object.keys(env) == []`)."""

    def __init__(self, values: dict[str, Any]) -> None:
        self.__dict__["_hidden"] = dict(values)

    def __getattr__(self, name: str) -> Any:
        try:
            return self.__dict__["_hidden"][name]
        except KeyError:
            raise AttributeError(name) from None

    def __dir__(self) -> list[str]:
        return []


class FakeCtx:
    def __init__(self) -> None:
        self.waited: list[Any] = []

    def waitUntil(self, awaitable: Any) -> None:
        self.waited.append(awaitable)


@pytest.fixture
def database(tmp_path, monkeypatch) -> SqliteDatabase:
    import db.d1 as d1_module

    monkeypatch.setattr(d1_module, "_js_null", JsNull)
    return open_database(tmp_path / "d1.sqlite", PROJECT_ROOT / "db" / "migrations")


def make_worker(**values: Any) -> entry.Default:
    return entry.Default(FakeCtx(), FakeEnvWrapper(values))


@pytest.fixture
def worker(database) -> entry.Default:
    return make_worker(
        TATTLEHASH_DB=FakeD1Binding(database), HMAC_SECRET=HMAC_SECRET, ADMIN_TOKEN=ADMIN_TOKEN, FF_CHALLENGES="true"
    )


async def test_fetch_health_through_d1_binding(worker):
    response = await worker.fetch(FakeSdkRequest("GET", "https://api.example/health?x=1", {"X-Request-ID": "w-1"}))
    assert response.status == 200
    assert response.headers["x-request-id"] == "w-1"
    assert json.loads(response.body)["database"] == "ok"


async def test_fetch_post_reads_body_headers_and_client_ip(worker, database):
    request = FakeSdkRequest(
        "POST",
        "https://api.example/admin/api-keys",
        {"authorization": f"Bearer {ADMIN_TOKEN}", "content-type": "application/json", "cf-connecting-ip": "192.0.2.1"},
        json.dumps({"email": "w@example.com"}).encode(),
    )
    response = await worker.fetch(request)
    assert response.status == 201
    key = json.loads(response.body)["api_key"]
    me = await worker.fetch(FakeSdkRequest("GET", "https://api.example/me", {"authorization": f"Bearer {key}"}))
    assert json.loads(me.body)["email"] == "w@example.com"


async def test_client_ip_is_cloudflares_header():
    request = await entry.to_request(
        FakeSdkRequest("GET", "https://a.example/x?q=1", {"CF-Connecting-IP": "203.0.113.9"})
    )
    assert (request.client_ip, request.path, request.query_string) == ("203.0.113.9", "/x", "q=1")


def test_vars_are_read_by_name_from_a_wrapper_that_lists_nothing(worker):
    values = entry.WorkerVars(worker.env)
    assert values.get("HMAC_SECRET") == HMAC_SECRET
    assert values.get("FF_CHALLENGES") == "true"
    assert values.get("TATTLEHASH_DB") is None  # a binding is not a value
    assert values.get("NOT_SET") is None
    services = entry.services_for(worker.env, worker.ctx)
    assert services.env.flag("FF_CHALLENGES") and not services.env.flag("FF_FIRE_MODE")


async def test_unreadable_body_is_a_400_envelope(worker):
    request = FakeSdkRequest("POST", "https://api.example/admin/api-keys", {"content-type": "application/json"}, b"{}")
    request.js_object.body_used = True  # the stream was consumed or broke before the adapter read it
    response = await worker.fetch(request)
    assert response.status == 400
    assert json.loads(response.body)["error"]["code"] == "E9004"


async def test_missing_d1_binding_is_a_5xx_envelope_not_a_crash():
    worker = make_worker(HMAC_SECRET=HMAC_SECRET, ADMIN_TOKEN=ADMIN_TOKEN)
    health = await worker.fetch(FakeSdkRequest("GET", "https://api.example/health"))
    assert health.status == 503 and json.loads(health.body)["database"] == "error"
    request = FakeSdkRequest(
        "POST",
        "https://api.example/admin/api-keys",
        {"authorization": f"Bearer {ADMIN_TOKEN}", "content-type": "application/json"},
        b"{}",
    )
    response = await worker.fetch(request)
    error = json.loads(response.body)["error"]
    assert response.status == 500 and error["code"] == "E9001" and error["details"]["request_id"]


async def test_deferred_work_goes_to_wait_until(worker):
    services = entry.services_for(worker.env, worker.ctx)

    async def work() -> None:
        return None

    pending = work()
    services.defer(pending)
    assert worker.ctx.waited == [pending]
    await pending


async def test_scheduled_runs_jobs_with_the_entrypoint_env(worker, database):
    class Controller:
        cron = "*/1 * * * *"

    database.connection.execute(
        "INSERT INTO wallet_challenges (id, wallet_address, chain_id, format, message, nonce, status, issued_at,"
        " expires_at) VALUES ('c1', ?, 'eip155:1', 'plain', 'm', 'n1', 'PENDING', '2020-01-01T00:00:00.000Z',"
        " '2020-01-01T00:10:00.000Z')",
        ("0x" + "a" * 40,),
    )
    # The runtime passes None for env and ctx to scheduled(); the adapter must use its own.
    await worker.scheduled(Controller(), None, None)
    status = database.connection.execute("SELECT status FROM wallet_challenges WHERE id = 'c1'").fetchone()[0]
    assert status == "EXPIRED"


def test_importing_entry_builds_the_app_without_io_or_randomness():
    """The deploy snapshot is taken after import: building the app there must not read entropy or the network."""
    code = (
        "import os, random, secrets, socket, uuid, sys\n"
        "def refuse(*a, **k): raise AssertionError('I/O or randomness at import')\n"
        "os.urandom = secrets.token_bytes = secrets.token_hex = secrets.token_urlsafe = uuid.uuid4 = refuse\n"
        "socket.socket.connect = socket.create_connection = refuse\n"
        "import entry\n"
        "assert entry.APP.router is not None and 'api.routes' in sys.modules\n"
        "print('ok')\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=PROJECT_ROOT / "src", capture_output=True, text=True, check=False
    )
    assert result.stdout.strip() == "ok", result.stderr


async def test_fetch_opens_a_d1_session_and_returns_its_bookmark(worker):
    binding = worker.env.TATTLEHASH_DB
    health = await worker.fetch(FakeSdkRequest("GET", "https://api.example/health"))
    assert binding.sessions[-1].start == "first-unconstrained"
    bookmark = dict(health.headers)["x-d1-bookmark"]
    assert bookmark == binding.sessions[-1].getBookmark()
    again = await worker.fetch(FakeSdkRequest("GET", "https://api.example/health", {"X-D1-Bookmark": bookmark}))
    assert binding.sessions[-1].start == bookmark and again.status == 200
