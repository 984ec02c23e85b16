"""ENFORCED mode through the HTTP API: custom timeouts, expiry with refunds, responses, dispute window (seed phase 5)."""

from __future__ import annotations

import sqlite3
from datetime import timedelta

import pytest

from api.jobs import run_scheduled
from core.clock import format_time, parse_time
from relay import delivery, notify
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


# ---- issue 12: a party's outcome is a proposal the other party sees for the whole dispute window


async def responded(client, pair, config=None):
    (_, creator), (_, counterparty) = pair
    challenge = await active(client, pair, config)
    for token in (creator, counterparty):
        await client.post(f"/challenges/{challenge['id']}/respond", json={"response": "ok"}, token=token)
    return challenge


def _rows(db_path, sql, *params):
    with sqlite3.connect(db_path) as connection:
        connection.row_factory = sqlite3.Row
        return [dict(row) for row in connection.execute(sql, params)]


async def test_a_proposal_is_shown_and_announced_to_the_counterparty(client, pair, services, clock, db_path):
    (creator_id, creator), (counterparty_id, counterparty) = pair
    hook = await client.post("/webhooks", json={"url": "https://hooks.example.com/counter"}, token=counterparty)
    assert hook.status == 201, hook.text
    challenge = await responded(client, pair, {"dispute_timeout_seconds": 7200, "stake_amount": STAKE,
                                               "currency_code": "USDC"})  # fmt: skip
    clock.advance(600)
    proposed = await client.post(
        f"/challenges/{challenge['id']}/resolve", json={"outcome": "CREATOR_WIN"}, token=creator
    )
    assert proposed.status == 200, proposed.text
    window_end = format_time(clock.now() + timedelta(seconds=7200))

    # The counterparty reads it in the challenge body ...
    seen = await get(client, challenge["id"], counterparty)
    assert seen["status"] == "AWAITING_RESOLUTION" and seen["outcome"] is None
    proposal = seen["proposed_outcome"]
    assert proposal["outcome"] == "CREATOR_WIN" and proposal["proposed_by"] == creator_id
    assert proposal["proposed_at"] == format_time(clock.now())
    assert proposal["dispute_window_ends_at"] == window_end == seen["deadlines"]["dispute"]
    # ... and in its history and events,
    events = (await client.get(f"/challenges/{challenge['id']}/events", token=counterparty)).json()
    announced = [event for event in events["events"] if event["type"] == "challenge.outcome_proposed"]
    assert len(announced) == 1 and announced[0]["id"] == proposal["event_id"]
    assert announced[0]["data"]["outcome"] == "CREATOR_WIN"
    assert announced[0]["data"]["dispute_window_ends_at"] == window_end
    assert events["history"][-1]["reason"] == "outcome proposed: CREATOR_WIN"
    assert events["history"][-1]["actor"] == f"user:{creator_id}"
    # ... and the event row is addressed to it, so its webhooks get it.
    (row,) = _rows(db_path, "SELECT user_id FROM events WHERE type = 'challenge.outcome_proposed'")
    assert row["user_id"] == counterparty_id
    await delivery.fan_out(services)
    deliveries = _rows(
        db_path,
        "SELECT w.user_id FROM webhook_deliveries d JOIN webhook_endpoints w ON w.id = d.endpoint_id"
        " JOIN events e ON e.id = d.event_id WHERE e.type = 'challenge.outcome_proposed'",
    )
    assert deliveries == [{"user_id": counterparty_id}]
    # ... and by email (the proposer gets a copy).
    emails = _rows(
        db_path,
        "SELECT user_id, template FROM notifications WHERE channel = 'EMAIL' AND template = ? AND user_id = ?",
        "challenge.outcome_proposed",
        counterparty_id,
    )
    assert len(emails) == 1
    message = notify.render(
        "challenge.outcome_proposed", seen["title"], announced[0]["data"], challenge["id"], "https://t.test"
    )
    assert "Outcome: CREATOR_WIN" in message.text and f"Dispute by: {window_end}" in message.text


async def test_the_dispute_window_runs_from_the_announcement(client, pair, services, clock):
    (creator_id, creator), (_, counterparty) = pair
    config = {"dispute_timeout_seconds": 3600, "stake_amount": STAKE, "currency_code": "USDC"}
    challenge = await responded(client, pair, config)
    # A proposal a minute before the window that opened with the responses would close.
    clock.advance(3540)
    await client.post(f"/challenges/{challenge['id']}/resolve", json={"outcome": "CREATOR_WIN"}, token=creator)
    clock.advance(120)
    report = await run_scheduled(services)
    assert report.results["challenge_timeouts"]["moved"] == 0
    body = await get(client, challenge["id"], counterparty)
    assert body["status"] == "AWAITING_RESOLUTION" and {s["status"] for s in body["stakes"]} == {"HELD"}
    # The counterparty still has the rest of its hour to dispute; here it lets the window pass.
    clock.advance(3600 - 120 - 1)
    await run_scheduled(services)
    assert (await get(client, challenge["id"], creator))["status"] == "AWAITING_RESOLUTION"
    clock.advance(1)
    await run_scheduled(services)
    body = await get(client, challenge["id"], creator)
    assert body["status"] == "COMPLETED" and body["outcome"] == "CREATOR_WIN"
    assert {s["user_id"]: s["status"] for s in body["stakes"]}[creator_id] == "RELEASED"


async def test_the_counterparty_disputes_within_the_window_by_proposing_another_outcome(client, pair, clock):
    (_, creator), (counterparty_id, counterparty) = pair
    challenge = await responded(client, pair)
    await client.post(f"/challenges/{challenge['id']}/resolve", json={"outcome": "CREATOR_WIN"}, token=creator)
    clock.advance(3600)
    disputed = await client.post(f"/challenges/{challenge['id']}/resolve", json={"outcome": "DRAW"}, token=counterparty)
    assert disputed.json()["status"] == "DISPUTED", disputed.text
    assert disputed.json()["proposed_outcome"]["proposed_by"] == counterparty_id
    events = (await client.get(f"/challenges/{challenge['id']}/events", token=creator)).json()["events"]
    assert [event["type"] for event in events][-3:] == [
        "challenge.outcome_proposed", "challenge.outcome_proposed", "challenge.disputed",
    ]  # fmt: skip


async def test_a_counter_proposal_after_the_window_is_refused(client, pair, clock):
    (_, creator), (_, counterparty) = pair
    challenge = await responded(client, pair)
    await client.post(f"/challenges/{challenge['id']}/resolve", json={"outcome": "CREATOR_WIN"}, token=creator)
    clock.advance(259200)
    late = await client.post(f"/challenges/{challenge['id']}/resolve", json={"outcome": "DRAW"}, token=counterparty)
    assert (late.status, late.error_code) == (409, "E3020")
    # Agreeing is still possible: both parties chose the outcome themselves.
    agreed = await client.post(
        f"/challenges/{challenge['id']}/resolve", json={"outcome": "CREATOR_WIN"}, token=counterparty
    )
    assert agreed.json()["status"] == "COMPLETED" and agreed.json()["outcome"] == "CREATOR_WIN"


async def test_repeating_a_proposal_does_not_restart_its_window(client, pair, clock):
    (_, creator), (_, counterparty) = pair
    challenge = await responded(client, pair)
    first = (
        await client.post(f"/challenges/{challenge['id']}/resolve", json={"outcome": "CREATOR_WIN"}, token=creator)
    ).json()
    clock.advance(600)
    again = await client.post(f"/challenges/{challenge['id']}/resolve", json={"outcome": "CREATOR_WIN"}, token=creator)
    assert again.status == 200 and again.json()["proposed_outcome"] == first["proposed_outcome"]
    events = (await client.get(f"/challenges/{challenge['id']}/events", token=counterparty)).json()["events"]
    assert [event["type"] for event in events].count("challenge.outcome_proposed") == 1


async def test_a_proposal_that_was_never_announced_never_settles(client, pair, services, clock, db_path):
    """A proposal stored before announcements existed (no event): the job announces it, then waits a window."""
    (_, creator), (counterparty_id, counterparty) = pair
    challenge = await responded(client, pair, {"dispute_timeout_seconds": 3600, "stake_amount": STAKE,
                                               "currency_code": "USDC"})  # fmt: skip
    with sqlite3.connect(db_path) as connection:
        connection.execute(
            "UPDATE challenges SET proposed_outcome = 'COUNTERPARTY_WIN' WHERE id = ?", (challenge["id"],)
        )
        connection.execute(
            "INSERT INTO challenge_party_actions (challenge_id, user_id, action, payload, created_at)"
            " VALUES (?, ?, 'RESOLVE', 'COUNTERPARTY_WIN', ?)",
            (challenge["id"], counterparty_id, format_time(clock.now())),
        )
    clock.advance(3600)
    report = await run_scheduled(services)
    assert report.results["challenge_timeouts"]["deferred"] == 1
    body = await get(client, challenge["id"], creator)
    assert body["status"] == "AWAITING_RESOLUTION"
    assert body["proposed_outcome"]["proposed_by"] == counterparty_id
    assert body["proposed_outcome"]["dispute_window_ends_at"] == format_time(clock.now() + timedelta(seconds=3600))
    (row,) = _rows(db_path, "SELECT user_id FROM events WHERE type = 'challenge.outcome_proposed'")
    assert row["user_id"] != counterparty_id  # told to the creator, who would lose
    clock.advance(3600)
    await run_scheduled(services)
    body = await get(client, challenge["id"], counterparty)
    assert body["status"] == "COMPLETED" and body["outcome"] == "COUNTERPARTY_WIN"


async def test_without_a_proposal_the_window_ends_in_a_refund(client, pair, services, clock):
    (_, creator), _ = pair
    challenge = await responded(client, pair)
    clock.advance(259200)
    await run_scheduled(services)
    body = await get(client, challenge["id"], creator)
    assert body["status"] == "COMPLETED" and body["outcome"] == "NO_CONTEST" and body["proposed_outcome"] is None
    assert {s["status"] for s in body["stakes"]} == {"REFUNDED"}


async def test_an_early_deadline_never_cuts_the_window_short(client, pair, services, clock, db_path):
    """Whatever the stored deadline says, the job settles a proposal only a whole window after its announcement."""
    (_, creator), (_, counterparty) = pair
    challenge = await responded(client, pair, {"dispute_timeout_seconds": 3600, "stake_amount": STAKE,
                                               "currency_code": "USDC"})  # fmt: skip
    proposed = await client.post(
        f"/challenges/{challenge['id']}/resolve", json={"outcome": "CREATOR_WIN"}, token=creator
    )
    window_end = proposed.json()["proposed_outcome"]["dispute_window_ends_at"]
    with sqlite3.connect(db_path) as connection:
        connection.execute(
            "UPDATE challenges SET dispute_deadline = ?, next_deadline_at = ? WHERE id = ?",
            (format_time(clock.now()), format_time(clock.now()), challenge["id"]),
        )
    clock.advance(60)
    report = await run_scheduled(services)
    assert report.results["challenge_timeouts"]["deferred"] == 1
    body = await get(client, challenge["id"], counterparty)
    assert body["status"] == "AWAITING_RESOLUTION" and body["deadlines"]["dispute"] == window_end
