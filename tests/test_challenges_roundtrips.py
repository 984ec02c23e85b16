"""Issue 13: the challenge endpoints' sequential D1 round trips, counted (not timed) with a wrapped database.

Counts include the API-key lookup: the aggregate's reads ride in its batch (core.auth.Preload).
"""

from __future__ import annotations

import pytest

from tests.conftest import ADMIN_TOKEN
from tests.support.roundtrips import count_round_trips


@pytest.fixture
async def parties(make_user):
    return await make_user(email="rt-creator@example.com"), await make_user(email="rt-counter@example.com")


async def measured(tally, call):
    tally.reset()
    response = await call
    return response, tally.round_trips, tally.describe()


async def test_reads_take_one_round_trip(client, services, make_user):
    _, token = await make_user(email="rt-reader@example.com")
    challenge = (await client.post("/challenges", json={"mode": "SOLO", "title": "t"}, token=token)).json()
    await client.post(f"/challenges/{challenge['id']}/confirm", token=token)
    tally = count_round_trips(services)
    path = f"/challenges/{challenge['id']}"
    for call in (
        client.get(path, token=token),
        client.get(f"{path}/events", token=token),
        client.get("/challenges", token=token),
        client.get(f"{path}/openings", token=token),
        client.get(f"/proof/{challenge['id']}", headers={"accept": "application/json"}),
        client.get(path, token=ADMIN_TOKEN),
    ):
        response, trips, calls = await measured(tally, call)
        assert response.status == 200
        assert trips == 1, calls


async def test_solo_writes_take_at_most_two_round_trips(client, services, make_user):
    _, token = await make_user(email="rt-solo@example.com")
    tally = count_round_trips(services)
    created, trips, calls = await measured(
        tally, client.post("/challenges", json={"mode": "SOLO", "title": "t"}, token=token)
    )
    assert created.status == 201 and trips <= 2, calls
    confirmed, trips, calls = await measured(
        tally, client.post(f"/challenges/{created.json()['id']}/confirm", token=token)
    )
    assert confirmed.status == 200 and confirmed.json()["status"] == "COMPLETED"
    assert trips <= 2, calls


async def test_fire_flow_writes_take_at_most_two_round_trips(client, services, parties):
    (_, creator), (counter_id, counter) = parties
    tally = count_round_trips(services)
    config = {"honesty_bond_amount": "1000", "currency_code": "USDC", "resolution_strategy": "MODERATOR"}
    body = {"mode": "FIRE", "title": "t", "counterparty_user_id": counter_id, "fire_config": config}
    bond = {"type": "HONESTY_BOND", "amount": "1000", "currency_code": "USDC"}
    created, trips, calls = await measured(tally, client.post("/challenges", json=body, token=creator))
    assert created.status == 201 and trips <= 2, calls
    base = f"/challenges/{created.json()['id']}"
    steps = [
        (f"{base}/send", None, creator, "AWAITING_COUNTERPARTY"),
        (f"{base}/stake", bond, creator, "AWAITING_COUNTERPARTY"),
        (f"{base}/accept", None, counter, "AWAITING_COUNTERPARTY"),
        (f"{base}/stake", bond, counter, "AWAITING_RESOLUTION"),
        (f"{base}/resolve", {"outcome": "CREATOR_WIN"}, creator, "AWAITING_RESOLUTION"),
        (f"{base}/dispute", None, counter, "DISPUTED"),
        (f"{base}/resolve", {"outcome": "COUNTERPARTY_WIN"}, ADMIN_TOKEN, "COMPLETED"),
    ]
    for path, json, token, status in steps:
        response, trips, calls = await measured(tally, client.post(path, json=json or {}, token=token))
        assert response.status == 200, response.json()
        assert response.json()["status"] == status
        assert trips <= 2, f"{path}: {trips}\n{calls}"
