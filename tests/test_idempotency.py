"""Issue 14 item 1: an Idempotency-Key commits with its action's write, so no crash leaves it stuck.

The crash tests stop the real local server with SIGKILL between two steps of one request (local.faults:
`LOCAL_D1_CRASH=after:<sql>` / `before:<sql>`), start it again on the same database, and retry.
"""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any

import httpx
import pytest

from api.jobs import run_scheduled
from tests.conftest import ADMIN_TOKEN
from tests.support.roundtrips import count_round_trips
from tests.support.server import LiveServer

SOLO = {"mode": "SOLO", "title": "exactly once"}
BOND = "1000"


def count(database: Path, table: str) -> int:
    with sqlite3.connect(database) as connection:
        return int(connection.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])


def api_key(server: LiveServer, email: str) -> tuple[str, str]:
    issued = httpx.post(
        f"{server.url}/admin/api-keys",
        json={"email": email},
        headers={"authorization": f"Bearer {ADMIN_TOKEN}"},
        timeout=30,
    )
    assert issued.status_code == 201, issued.text
    return issued.json()["user_id"], issued.json()["api_key"]


def post(server: LiveServer, path: str, token: str, body: dict[str, Any], key: str | None = None) -> httpx.Response:
    headers = {"authorization": f"Bearer {token}"}
    if key is not None:
        headers["idempotency-key"] = key
    return httpx.post(f"{server.url}{path}", json=body, headers=headers, timeout=30)


def died_during(server: LiveServer, path: str, token: str, body: dict[str, Any], key: str) -> None:
    """The request gets no answer: the server killed itself at its crash point."""
    with pytest.raises(httpx.TransportError):
        post(server, path, token, body, key)
    assert server.process is not None
    assert server.process.wait(timeout=30) == -9


@pytest.fixture
def crashing(tmp_path: Path, env_vars: dict[str, str]):
    """start(crash): the local server on one database, killed at `crash` (None: a healthy restart)."""
    servers: list[LiveServer] = []

    def start(crash: str | None) -> LiveServer:
        variables = dict(env_vars)
        if crash is not None:
            variables["LOCAL_D1_CRASH"] = crash
        server = LiveServer(tmp_path, variables).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.mark.slow
def test_a_create_that_committed_before_the_crash_is_replayed_not_repeated(crashing):
    first = crashing(None)
    _, token = api_key(first, "crash-create@example.com")
    first.stop()
    dying = crashing("after:INSERT INTO challenges")
    died_during(dying, "/challenges", token, SOLO, "create-1")
    assert count(dying.database_path, "challenges") == 1  # the write committed before the answer

    again = crashing(None)
    retried = post(again, "/challenges", token, SOLO, "create-1")

    assert retried.status_code == 201, retried.text
    assert retried.headers["idempotent-replayed"] == "true"
    assert count(again.database_path, "challenges") == 1
    (stored_id,) = sqlite3.connect(again.database_path).execute("SELECT id FROM challenges").fetchone()
    assert retried.json()["id"] == stored_id and retried.json()["title"] == SOLO["title"]
    # Once answered, the answer is stored: a third try replays the same bytes.
    third = post(again, "/challenges", token, SOLO, "create-1")
    assert third.status_code == 201 and third.json() == retried.json()


@pytest.mark.slow
def test_a_create_that_died_before_its_write_runs_on_the_first_retry(crashing):
    first = crashing(None)
    _, token = api_key(first, "crash-early@example.com")
    first.stop()
    dying = crashing("before:INSERT INTO challenges")
    died_during(dying, "/challenges", token, SOLO, "create-2")
    assert count(dying.database_path, "challenges") == 0
    assert count(dying.database_path, "idempotency_keys") == 0  # nothing was reserved

    again = crashing(None)
    retried = post(again, "/challenges", token, SOLO, "create-2")

    assert retried.status_code == 201, retried.text
    assert "idempotent-replayed" not in retried.headers
    assert count(again.database_path, "challenges") == 1


@pytest.mark.slow
def test_a_stake_that_committed_before_the_crash_is_replayed_not_held_twice(crashing):
    first = crashing(None)
    _, creator = api_key(first, "crash-stake-a@example.com")
    counterparty_id, _ = api_key(first, "crash-stake-b@example.com")
    fire = {
        "mode": "FIRE",
        "title": "bond once",
        "counterparty_user_id": counterparty_id,
        "fire_config": {"honesty_bond_amount": BOND, "currency_code": "USDC", "resolution_strategy": "MODERATOR"},
    }
    challenge_id = post(first, "/challenges", creator, fire).json()["id"]
    assert post(first, f"/challenges/{challenge_id}/send", creator, {}).status_code == 200
    first.stop()
    bond = {"type": "HONESTY_BOND", "amount": BOND, "currency_code": "USDC"}
    dying = crashing("after:INSERT INTO stakes")
    died_during(dying, f"/challenges/{challenge_id}/stake", creator, bond, "bond-1")
    assert count(dying.database_path, "stakes") == 1

    again = crashing(None)
    retried = post(again, f"/challenges/{challenge_id}/stake", creator, bond, "bond-1")

    assert retried.status_code == 200, retried.text
    assert retried.headers["idempotent-replayed"] == "true"
    assert [stake["status"] for stake in retried.json()["stakes"]] == ["HELD"]
    assert count(again.database_path, "stakes") == 1


async def test_two_requests_racing_with_one_key_make_one_challenge(client, services, make_user, db_path):
    _, token = await make_user(email="race-key@example.com")
    headers = {"idempotency-key": "race-1"}

    both = await asyncio.gather(
        *(client.post("/challenges", json=SOLO, token=token, headers=headers) for _ in range(2))
    )

    assert [response.status for response in both] == [201, 201], [response.text for response in both]
    assert both[0].json()["id"] == both[1].json()["id"]
    assert sorted(response.headers.get("idempotent-replayed", "") for response in both) == ["", "true"]
    assert count(db_path, "challenges") == 1


async def test_a_key_expires_after_24_hours_and_the_scheduled_job_deletes_it(client, services, make_user, clock):
    _, token = await make_user(email="expiry-key@example.com")
    headers = {"idempotency-key": "day-1"}
    first = await client.post("/challenges", json=SOLO, token=token, headers=headers)
    assert first.status == 201
    clock.advance(hours=23, minutes=59)
    other = await client.post("/challenges", json={**SOLO, "title": "other"}, token=token, headers=headers)
    assert (other.status, other.error_code) == (409, "E9009")
    assert (await run_scheduled(services)).results["expire_idempotency_keys"] == {"deleted": 0}

    clock.advance(minutes=2)
    reused = await client.post("/challenges", json={**SOLO, "title": "other"}, token=token, headers=headers)

    assert reused.status == 201 and reused.json()["title"] == "other"
    assert reused.json()["id"] != first.json()["id"]
    clock.advance(hours=25)
    assert (await run_scheduled(services)).results["expire_idempotency_keys"] == {"deleted": 1}
    rows = await services.db.prepare("SELECT COUNT(*) AS n FROM idempotency_keys").first("n")
    assert rows == 0


async def test_a_refused_request_does_not_use_up_its_key(client, make_user, db_path):
    _, creator = await make_user(email="error-key-a@example.com")
    counterparty_id, _ = await make_user(email="error-key-b@example.com")
    fire = {
        "mode": "FIRE",
        "title": "wrong currency first",
        "counterparty_user_id": counterparty_id,
        "fire_config": {"honesty_bond_amount": BOND, "currency_code": "USDC", "resolution_strategy": "MODERATOR"},
    }
    challenge_id = (await client.post("/challenges", json=fire, token=creator)).json()["id"]
    headers = {"idempotency-key": "bond-try"}
    wrong = {"type": "HONESTY_BOND", "amount": BOND, "currency_code": "EUR"}
    refused = await client.post(f"/challenges/{challenge_id}/stake", json=wrong, token=creator, headers=headers)
    assert 400 <= refused.status < 500, refused.text
    assert count(db_path, "idempotency_keys") == 0

    right = {"type": "HONESTY_BOND", "amount": BOND, "currency_code": "USDC"}
    corrected = await client.post(f"/challenges/{challenge_id}/stake", json=right, token=creator, headers=headers)

    assert corrected.status == 200, corrected.text
    assert "idempotent-replayed" not in corrected.headers


async def test_keyed_writes_take_the_same_round_trips_as_unkeyed_ones(client, services, make_user):
    _, creator = await make_user(email="rt-key-a@example.com")
    counterparty_id, _ = await make_user(email="rt-key-b@example.com")
    tally = count_round_trips(services)
    fire = {
        "mode": "FIRE",
        "title": "counted",
        "counterparty_user_id": counterparty_id,
        "fire_config": {"honesty_bond_amount": BOND, "currency_code": "USDC", "resolution_strategy": "MODERATOR"},
    }

    tally.reset()
    created = await client.post("/challenges", json=fire, token=creator, headers={"idempotency-key": "rt-create"})
    assert created.status == 201, created.text
    assert tally.round_trips == 2, tally.describe()
    challenge_id = created.json()["id"]
    assert (await client.post(f"/challenges/{challenge_id}/send", token=creator)).status == 200
    tally.reset()
    bond = {"type": "HONESTY_BOND", "amount": BOND, "currency_code": "USDC"}
    staked = await client.post(
        f"/challenges/{challenge_id}/stake", json=bond, token=creator, headers={"idempotency-key": "rt-stake"}
    )
    assert staked.status == 200, staked.text
    assert tally.round_trips == 2, tally.describe()
    tally.reset()
    replayed = await client.post(
        f"/challenges/{challenge_id}/stake", json=bond, token=creator, headers={"idempotency-key": "rt-stake"}
    )
    assert replayed.headers["idempotent-replayed"] == "true" and replayed.json() == staked.json()
    assert tally.round_trips <= 2, tally.describe()


@pytest.mark.slow
def test_keys_replay_in_both_runtimes(live_server):
    """The claim rides in the D1 binding's batch (workerd) as in SQLite's; the answer is stored after it."""
    with httpx.Client(base_url=live_server.url, timeout=30) as http:
        admin = {"authorization": f"Bearer {ADMIN_TOKEN}"}
        issued = [http.post("/admin/api-keys", json={"email": f"both-{n}@example.com"}, headers=admin) for n in (1, 2)]
        (_, creator), (counterparty_id, _) = ((i.json()["user_id"], i.json()["api_key"]) for i in issued)
        auth = {"authorization": f"Bearer {creator}"}
        fire = {
            "mode": "FIRE",
            "title": "keyed in both runtimes",
            "counterparty_user_id": counterparty_id,
            "fire_config": {"honesty_bond_amount": BOND, "currency_code": "USDC", "resolution_strategy": "MODERATOR"},
        }
        created = [http.post("/challenges", json=fire, headers={**auth, "idempotency-key": "both-1"}) for _ in (1, 2)]
        assert [response.status_code for response in created] == [201, 201], created[1].text
        assert created[1].headers["idempotent-replayed"] == "true"
        assert created[0].json() == created[1].json()
        challenge_id = created[0].json()["id"]
        assert http.post(f"/challenges/{challenge_id}/send", headers=auth).status_code == 200
        bond = {"type": "HONESTY_BOND", "amount": BOND, "currency_code": "USDC"}
        stakes = [
            http.post(f"/challenges/{challenge_id}/stake", json=bond, headers={**auth, "idempotency-key": "both-2"})
            for _ in (1, 2)
        ]
        assert [response.status_code for response in stakes] == [200, 200], stakes[1].text
        assert stakes[1].headers["idempotent-replayed"] == "true"
        assert [stake["status"] for stake in stakes[1].json()["stakes"]] == ["HELD"]
        other = http.post(f"/challenges/{challenge_id}/stake", json={**bond, "amount": "1"},
                          headers={**auth, "idempotency-key": "both-2"})  # fmt: skip
        assert (other.status_code, other.json()["error"]["code"]) == (409, "E9009")
