"""Development-only clock offset (issue 14, item 5): the local server can fast-forward; the Worker cannot.

The walk through the retry schedule runs the real local server (tests/support/server.py), a real receiver
on 127.0.0.1 and wrangler's cron URL; time moves only through POST /dev/clock, never by sleeping.
"""

from __future__ import annotations

import itertools
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

import entry
from core.clock import ManualClock, OffsetClock, parse_time
from local.config import LocalConfig
from local.devclock import DEV_CLOCK_ENV, DEV_CLOCK_PATH
from local.server import build_asgi, build_services
from relay.delivery import MAX_ATTEMPTS, RETRY_DELAYS
from tests.conftest import ADMIN_TOKEN, MIGRATIONS
from tests.support.server import LiveServer
from tests.test_database import FakeD1Binding
from tests.test_entry import FakeSdkRequest, database, make_worker
from tests.test_relay_support import Receiver, Reply

__all__ = ["database"]  # the Worker tests' D1 fixture, used below


def test_an_offset_clock_moves_only_forward() -> None:
    base = ManualClock(datetime(2026, 1, 1, tzinfo=UTC))
    clock = OffsetClock(base, 30)
    assert clock.now() == base.now() + timedelta(seconds=30)
    assert clock.advance(3600) == base.now() + timedelta(seconds=3630)
    base.advance(5)
    assert clock.now() == base.now() + timedelta(seconds=3630) and clock.offset_seconds == 3630
    for bad in (-1, float("nan")):
        with pytest.raises(ValueError):
            clock.advance(bad)
        with pytest.raises(ValueError):
            OffsetClock(base, bad)


def _local(tmp_path: Path, **extra: str) -> Any:
    config = LocalConfig({"HMAC_SECRET": "x" * 40, **extra}, tmp_path / "local.sqlite", MIGRATIONS)
    services = build_services(config)
    return services, httpx.AsyncClient(transport=httpx.ASGITransport(app=build_asgi(services)), base_url="http://t")


async def test_the_local_server_reads_and_moves_its_dev_clock(tmp_path: Path) -> None:
    services, http = _local(tmp_path, **{DEV_CLOCK_ENV: "60"})
    async with http:
        assert isinstance(services.clock, OffsetClock)
        state = (await http.get(DEV_CLOCK_PATH)).json()
        assert state["offset_seconds"] == 60
        assert abs((parse_time(state["now"]) - datetime.now(UTC)).total_seconds() - 60) < 30
        moved = await http.post(DEV_CLOCK_PATH, json={"advance_seconds": 7200})
        assert moved.status_code == 200 and moved.json()["offset_seconds"] == 7260
        assert services.now() - datetime.now(UTC) > timedelta(seconds=7200)
        for body, code in (
            ({"advance_seconds": -1}, "E9004"),
            ({"advance_seconds": "60"}, "E9004"),
            ({"advance_seconds": True}, "E9004"),
            ({"advance_seconds": 1e12}, "E9004"),
            ({"offset_seconds": 0}, "E9004"),
            ([], "E9004"),
        ):
            refused = await http.post(DEV_CLOCK_PATH, json=body)
            assert (refused.status_code, refused.json()["error"]["code"]) == (400, code), body
        malformed = await http.post(DEV_CLOCK_PATH, content=b"{", headers={"content-type": "application/json"})
        assert (malformed.status_code, malformed.json()["error"]["code"]) == (400, "E9014")
        assert (await http.delete(DEV_CLOCK_PATH)).status_code == 405
        assert (await http.get(DEV_CLOCK_PATH)).json()["offset_seconds"] == 7260  # refusals moved nothing


async def test_without_the_variable_there_is_no_dev_clock(tmp_path: Path) -> None:
    services, http = _local(tmp_path)
    async with http:
        assert not isinstance(services.clock, OffsetClock)
        for method in ("GET", "POST"):
            response = await http.request(method, DEV_CLOCK_PATH, json={"advance_seconds": 60})
            assert (response.status_code, response.json()["error"]["code"]) == (404, "E9008")


def test_a_malformed_offset_stops_the_local_server_at_startup(tmp_path: Path) -> None:
    for raw in ("soon", "-5", "inf"):
        with pytest.raises(ValueError, match=DEV_CLOCK_ENV):
            _local(tmp_path, **{DEV_CLOCK_ENV: raw})


async def test_the_worker_ignores_the_offset_and_has_no_dev_clock(database) -> None:
    worker = make_worker(
        TATTLEHASH_DB=FakeD1Binding(database), HMAC_SECRET="x" * 40, ADMIN_TOKEN=ADMIN_TOKEN, **{DEV_CLOCK_ENV: "86400"}
    )
    for method in ("GET", "POST"):
        request = FakeSdkRequest(
            method, f"https://api.example{DEV_CLOCK_PATH}", {"content-type": "application/json"},
            json.dumps({"advance_seconds": 86400}).encode(),
        )  # fmt: skip
        response = await worker.fetch(request)
        assert (response.status, json.loads(response.body)["error"]["code"]) == (404, "E9008")
    services = entry.services_for(worker.env, worker.ctx)
    assert not isinstance(services.clock, OffsetClock)
    assert abs((services.now() - datetime.now(UTC)).total_seconds()) < 60  # not a day ahead


@pytest.fixture
def dev_clock_vars(env_vars: dict[str, str]) -> dict[str, str]:
    env_vars[DEV_CLOCK_ENV] = "86400"
    return env_vars


@pytest.mark.slow
def test_only_the_local_runtime_honours_the_offset(dev_clock_vars, live_server) -> None:
    """Both runtimes get DEV_CLOCK_OFFSET_SECONDS=86400: the local server is a day ahead, workerd is not."""
    local = isinstance(live_server, LiveServer)
    with httpx.Client(base_url=live_server.url, timeout=30) as http:
        clock = http.post(DEV_CLOCK_PATH, json={"advance_seconds": 60})
        assert clock.status_code == (200 if local else 404)
        issued = http.post("/admin/api-keys", json={}, headers={"authorization": f"Bearer {ADMIN_TOKEN}"})
        token = issued.json()["api_key"]
        created = http.post(
            "/webhooks", json={"url": "https://hooks.example.com/clock"}, headers={"authorization": f"Bearer {token}"}
        )
        assert created.status_code == 201, created.text
    ahead = (parse_time(created.json()["created_at"]) - datetime.now(UTC)).total_seconds()
    if local:
        assert 86400 + 60 - 120 < ahead < 86400 + 60 + 120
    else:
        assert abs(ahead) < 120


@pytest.mark.slow
def test_retries_follow_the_schedule_through_the_real_server(tmp_path: Path, env_vars: dict[str, str]) -> None:
    """A webhook to a receiver that always fails: each cron run before the next attempt time sends nothing,
    the first one after it sends exactly one attempt, the gaps follow RETRY_DELAYS (±10 % jitter), and
    after MAX_ATTEMPTS the delivery is FAILED."""
    receiver = Receiver(lambda index: Reply(503))
    server = LiveServer(tmp_path, {**env_vars, "ALLOW_INSECURE_WEBHOOKS": "true", DEV_CLOCK_ENV: "0"}).start()
    try:
        with httpx.Client(base_url=server.url, timeout=30) as http:

            def now() -> datetime:
                return parse_time(http.get(DEV_CLOCK_PATH).json()["now"])

            def advance(seconds: float) -> None:
                assert http.post(DEV_CLOCK_PATH, json={"advance_seconds": seconds}).status_code == 200

            key = http.post("/admin/api-keys", json={}, headers={"authorization": f"Bearer {ADMIN_TOKEN}"})
            auth = {"authorization": f"Bearer {key.json()['api_key']}"}
            hook = http.post("/webhooks", json={"url": receiver.url}, headers=auth).json()
            receiver.secret = hook["secret"]
            assert (
                http.post("/challenges", json={"mode": "SOLO", "title": "retry walk"}, headers=auth).status_code == 201
            )

            def delivery() -> dict[str, Any]:
                (item,) = http.get(f"/webhooks/{hook['id']}/deliveries", headers=auth).json()["items"]
                return item

            assert server.fire_cron() == []  # the first attempt
            assert delivery()["attempt_count"] == 1 and len(receiver.received) == 1
            for number in range(2, MAX_ATTEMPTS + 1):
                due = parse_time(delivery()["next_attempt_at"])
                advance((due - now()).total_seconds() - 5)  # five seconds short: not due yet
                assert server.fire_cron() == []
                assert delivery()["attempt_count"] == number - 1 and len(receiver.received) == number - 1
                advance(10)
                assert server.fire_cron() == []
                assert delivery()["attempt_count"] == number and len(receiver.received) == number
            final = delivery()
            backlog = http.get(f"/webhooks/{hook['id']}", headers=auth).json()["backlog"]
    finally:
        server.stop()
        receiver.stop()

    assert (final["status"], final["next_attempt_at"], final["last_status_code"]) == ("FAILED", None, 503)
    starts = [parse_time(attempt["started_at"]) for attempt in final["attempts"]]
    gaps = [(later - earlier).total_seconds() for earlier, later in itertools.pairwise(starts)]
    assert len(gaps) == len(RETRY_DELAYS)
    for gap, delay in zip(gaps, RETRY_DELAYS, strict=True):
        assert delay * 0.9 <= gap <= delay * 1.1 + 15, (gap, delay)
    assert sum(gaps) > 0.9 * sum(RETRY_DELAYS)  # about 27.6 hours of schedule, walked in seconds
    assert backlog == {"pending": 0, "oldest_pending_age_seconds": None, "next_attempt_at": None}
