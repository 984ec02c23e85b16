"""src/entry.py's Worker adapter, driven with fakes of the runtime's request, env, ctx and D1 binding."""

from __future__ import annotations

import json
from typing import Any

import pytest

import entry
from db.sqlite import SqliteDatabase
from local.config import PROJECT_ROOT
from local.server import open_database
from tests.conftest import ADMIN_TOKEN, HMAC_SECRET
from tests.test_database import FakeD1Binding, JsNull


class FakeHeaders:
    def __init__(self, pairs: dict[str, str]) -> None:
        self._pairs = pairs

    def entries(self) -> list[list[str]]:
        return [[key, value] for key, value in self._pairs.items()]


class FakeBuffer:
    def __init__(self, data: bytes) -> None:
        self._data = data

    def to_bytes(self) -> bytes:
        return self._data


class FakeJsRequest:
    def __init__(self, method: str, url: str, headers: dict[str, str] | None = None, body: bytes = b"") -> None:
        self.method, self.url, self.headers, self._body = method, url, FakeHeaders(headers or {}), body

    async def arrayBuffer(self) -> FakeBuffer:
        return FakeBuffer(self._body)


class FakeEnv:
    def __init__(self, binding: Any, **values: str) -> None:
        self.TATTLEHASH_DB = binding
        for name, value in values.items():
            setattr(self, name, value)


class FakeCtx:
    def __init__(self) -> None:
        self.waited: list[Any] = []

    def waitUntil(self, promise: Any) -> None:
        self.waited.append(promise)


@pytest.fixture
def worker(tmp_path, monkeypatch):
    import db.d1 as d1_module

    monkeypatch.setattr(d1_module, "_js_null", JsNull)
    database: SqliteDatabase = open_database(tmp_path / "d1.sqlite", PROJECT_ROOT / "db" / "migrations")
    env = FakeEnv(FakeD1Binding(database), HMAC_SECRET=HMAC_SECRET, ADMIN_TOKEN=ADMIN_TOKEN, FF_CHALLENGES="true")
    return entry.Default(FakeCtx(), env)


async def test_fetch_health_through_d1_binding(worker):
    response = await worker.fetch(FakeJsRequest("GET", "https://api.example/health?x=1", {"X-Request-ID": "w-1"}))
    assert response.status == 200
    assert response.headers["x-request-id"] == "w-1"
    assert json.loads(response.body)["database"] == "ok"


async def test_fetch_post_with_body_and_client_ip(worker):
    request = FakeJsRequest(
        "POST",
        "https://api.example/admin/api-keys",
        {"authorization": f"Bearer {ADMIN_TOKEN}", "content-type": "application/json", "cf-connecting-ip": "192.0.2.1"},
        json.dumps({"email": "w@example.com"}).encode(),
    )
    response = await worker.fetch(request)
    assert response.status == 201
    key = json.loads(response.body)["api_key"]
    me = await worker.fetch(FakeJsRequest("GET", "https://api.example/me", {"authorization": f"Bearer {key}"}))
    assert json.loads(me.body)["email"] == "w@example.com"


async def test_js_env_exposes_strings_only(worker):
    values = entry.JsEnv(worker.env)
    assert values["HMAC_SECRET"] == HMAC_SECRET
    assert "TATTLEHASH_DB" not in values
    assert set(values) == {"HMAC_SECRET", "ADMIN_TOKEN", "FF_CHALLENGES"}


async def test_scheduled_runs_jobs_with_the_entrypoint_env(worker):
    class Controller:
        cron = "*/1 * * * *"

    connection = worker.env.TATTLEHASH_DB.backend.connection
    connection.execute(
        "INSERT INTO wallet_challenges (id, wallet_address, chain_id, format, message, nonce, status, issued_at,"
        " expires_at) VALUES ('c1', ?, 'eip155:1', 'plain', 'm', 'n1', 'PENDING', '2020-01-01T00:00:00.000Z',"
        " '2020-01-01T00:10:00.000Z')",
        ("0x" + "a" * 40,),
    )
    # The runtime passes None for env and ctx to scheduled(); the adapter must use its own.
    await worker.scheduled(Controller(), None, None)
    assert connection.execute("SELECT status FROM wallet_challenges WHERE id = 'c1'").fetchone()[0] == "EXPIRED"


def test_importing_entry_does_no_work():
    import subprocess
    import sys

    code = "import entry, sys; assert entry._app is None; assert 'api.routes' not in sys.modules; print('ok')"
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=PROJECT_ROOT / "src", capture_output=True, text=True, check=False
    )
    assert result.stdout.strip() == "ok", result.stderr
