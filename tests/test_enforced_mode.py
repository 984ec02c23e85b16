"""ENFORCED mode through the HTTP API: custom timeouts, expiry with refunds, responses, dispute window (seed phase 5)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from api.jobs import run_scheduled
from core.clock import format_time, parse_time
from tests.conftest import ADMIN_TOKEN

STAKE = "500"


@pytest.fixture
async def pair(make_user):
    return await make_user(email="e-creator@example.com"), await make_user(email="e-counter@example.com")


async def new_enforced(client, pair, config=None, send=True):
    (_, creator), (counterparty_id, _) = pair
    body = {
        "mode": "ENFORCED",
        "title": "Deliver the report",
        "counterparty_user_id": counterparty_id,
        "enforced_config": config if config is not None else {"stake_amount": STAKE, "currency_code": "USDC"},
    }
    response = await client.post("/challenges", json=body, token=creator)
    assert response.status == 201, response.text
    if send:
        assert (await client.post(f"/challenges/{response.json()['id']}/send", token=creator)).status == 200
    return response.json()


async def stake(client, challenge_id, token):
    body = {"type": "BASE", "amount": STAKE, "currency_code": "USDC"}
    return await client.post(f"/challenges/{challenge_id}/stake", json=body, token=token)


async def get(client, challenge_id, token):
    return (await client.get(f"/challenges/{challenge_id}", token=token)).json()


async def active(client, pair, config=None):
    (_, creator), (_, counterparty) = pair
    challenge = await new_enforced(client, pair, config)
    await stake(client, challenge["id"], creator)
    await stake(client, challenge["id"], counterparty)
    accepted = await client.post(f"/challenges/{challenge['id']}/accept", token=counterparty)
    assert accepted.json()["status"] == "ACTIVE", accepted.text
    return accepted.json()


async def test_uses_custom_timeouts(client, pair, clock):
    (_, creator), (_, counterparty) = pair
    config = {"accept_timeout_seconds": 120, "response_timeout_seconds": 600, "dispute_timeout_seconds": 7200,
              "stake_amount": STAKE, "currency_code": "USDC"}  # fmt: skip
    sent_at = clock.now()
    challenge = await new_enforced(client, pair, config)
    body = await get(client, challenge["id"], creator)
    assert parse_time(body["deadlines"]["accept"]) == sent_at + timedelta(seconds=120)
    assert body["enforced_config"]["response_timeout_seconds"] == 600
    clock.advance(30)
    await stake(client, challenge["id"], creator)
    await stake(client, challenge["id"], counterparty)
    locked = (await client.post(f"/challenges/{challenge['id']}/accept", token=counterparty)).json()
    assert locked["status"] == "ACTIVE"
    assert parse_time(locked["deadlines"]["response"]) == parse_time(locked["intent_locked_at"]) + timedelta(
        seconds=600
    )
    clock.advance(60)
    first = (
        await client.post(f"/challenges/{challenge['id']}/respond", json={"response": "sent"}, token=creator)
    ).json()
    assert first["status"] == "ACTIVE"
    second = (await client.post(f"/challenges/{challenge['id']}/respond", json={"response": "got it"},
                                token=counterparty)).json()  # fmt: skip
    assert second["status"] == "AWAITING_RESOLUTION"
    assert parse_time(second["deadlines"]["dispute"]) == clock.now() + timedelta(seconds=7200)


async def test_defaults_when_not_configured(client, pair):
    challenge = await new_enforced(client, pair, {}, send=False)
    assert challenge["enforced_config"] == {"accept_timeout_seconds": 900, "response_timeout_seconds": 86400,
                                            "dispute_timeout_seconds": 259200, "stake_amount": None,
                                            "currency_code": None}  # fmt: skip


@pytest.mark.parametrize(("config", "code"), [
    ({"accept_timeout_seconds": 59}, "E4010"), ({"accept_timeout_seconds": 604801}, "E4010"),
    ({"response_timeout_seconds": 299}, "E4010"), ({"response_timeout_seconds": 2592001}, "E4010"),
    ({"dispute_timeout_seconds": 3599}, "E4010"), ({"dispute_timeout_seconds": 2592001}, "E4010"),
    ({"accept_timeout_seconds": -5}, "E3004"), ({"response_timeout_seconds": 0}, "E3004"),
    ({"stake_amount": "0", "currency_code": "USDC"}, "E4003"), ({"stake_amount": "1.5", "currency_code": "X"}, "E4003"),
    ({"accept_timeout_seconds": "soon"}, "E9004"),
])  # fmt: skip
async def test_enforces_timeout_constraints(client, pair, config, code, db_path):
    (_, creator), (counterparty_id, _) = pair
    body = {"mode": "ENFORCED", "title": "x", "counterparty_user_id": counterparty_id, "enforced_config": config}
    response = await client.post("/challenges", json=body, token=creator)
    assert (response.status, response.error_code) == (400, code), response.text


async def test_expires_and_refunds_on_accept_timeout(client, pair, services, clock):
    (_, creator), (_, counterparty) = pair
    challenge = await new_enforced(client, pair, {"accept_timeout_seconds": 300, "stake_amount": STAKE,
                                                  "currency_code": "USDC"})  # fmt: skip
    await stake(client, challenge["id"], creator)
    clock.advance(301)
    late = await client.post(f"/challenges/{challenge['id']}/accept", token=counterparty)
    assert (late.status, late.error_code) == (410, "E3013")
    report = await run_scheduled(services)
    assert report.results["challenge_timeouts"]["moved"] == 1
    body = await get(client, challenge["id"], creator)
    assert body["status"] == "EXPIRED"
    assert [s["status"] for s in body["stakes"]] == ["REFUNDED"]


async def test_expires_and_refunds_on_response_timeout(client, pair, services, clock):
    (_, creator), _ = pair
    challenge = await active(client, pair, {"response_timeout_seconds": 3600, "stake_amount": STAKE,
                                            "currency_code": "USDC"})  # fmt: skip
    await client.post(f"/challenges/{challenge['id']}/respond", json={"response": "done"}, token=creator)
    clock.advance(3600)
    await run_scheduled(services)
    body = await get(client, challenge["id"], creator)
    assert body["status"] == "EXPIRED"
    assert {s["status"] for s in body["stakes"]} == {"REFUNDED"} and len(body["stakes"]) == 2
    events = (await client.get(f"/challenges/{challenge['id']}/events", token=creator)).json()["events"]
    assert [e["type"] for e in events].count("stake.refunded") == 2


async def test_dispute_window_closes_with_the_proposed_outcome(client, pair, services, clock):
    (creator_id, creator), (_, counterparty) = pair
    challenge = await active(client, pair)
    for token in (creator, counterparty):
        await client.post(f"/challenges/{challenge['id']}/respond", json={"response": "ok"}, token=token)
    proposed = await client.post(
        f"/challenges/{challenge['id']}/resolve", json={"outcome": "CREATOR_WIN"}, token=creator
    )
    assert proposed.json()["status"] == "AWAITING_RESOLUTION"
    clock.advance(259200)
    await run_scheduled(services)
    body = await get(client, challenge["id"], creator)
    assert body["status"] == "COMPLETED" and body["outcome"] == "CREATOR_WIN"
    assert {s["user_id"]: s["status"] for s in body["stakes"]}[creator_id] == "RELEASED"
    assert body["settlement"] == {"winner": "250", "treasury": "50", "burn": "150", "provers": "50"}


async def test_dispute_goes_to_the_moderator(client, pair, clock):
    (_, creator), (_, counterparty) = pair
    challenge = await active(client, pair)
    for token in (creator, counterparty):
        await client.post(f"/challenges/{challenge['id']}/respond", json={"response": "ok"}, token=token)
    disputed = await client.post(f"/challenges/{challenge['id']}/dispute", token=counterparty)
    assert disputed.json()["status"] == "DISPUTED"
    decided = await client.post(f"/challenges/{challenge['id']}/resolve", json={"outcome": "DRAW"}, token=ADMIN_TOKEN)
    assert decided.json()["status"] == "COMPLETED"
    assert {s["status"] for s in decided.json()["stakes"]} == {"REFUNDED"}


async def test_dispute_after_the_window_is_refused(client, pair, clock):
    (_, creator), (_, counterparty) = pair
    challenge = await active(client, pair)
    for token in (creator, counterparty):
        await client.post(f"/challenges/{challenge['id']}/respond", json={"response": "ok"}, token=token)
    clock.advance(259200)
    late = await client.post(f"/challenges/{challenge['id']}/dispute", token=counterparty)
    assert (late.status, late.error_code) == (409, "E3020")
    assert (await get(client, challenge["id"], creator))["status"] == "AWAITING_RESOLUTION"


async def test_respond_after_deadline_is_refused(client, pair, clock):
    (_, creator), _ = pair
    challenge = await active(client, pair)
    clock.advance(86400)
    late = await client.post(f"/challenges/{challenge['id']}/respond", json={"response": "late"}, token=creator)
    assert (late.status, late.error_code) == (410, "E3013")


async def test_without_stake_amount_accept_locks_at_once(client, pair):
    (_, _), (_, counterparty) = pair
    challenge = await new_enforced(client, pair, {})
    accepted = (await client.post(f"/challenges/{challenge['id']}/accept", token=counterparty)).json()
    assert accepted["status"] == "ACTIVE" and accepted["stakes"] == []
    assert format_time(parse_time(accepted["deadlines"]["response"])) == accepted["deadlines"]["response"]
