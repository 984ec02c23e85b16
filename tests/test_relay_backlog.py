"""Webhook backlogs (issue 14, item 4): a receiver that comes back gets its whole backlog in one run, in order.

A real receiver on 127.0.0.1 is down for a few events, then answers again. Time moves only through the
test's ManualClock; every assertion counts attempts, deliveries and requests, none measures time.
"""

from __future__ import annotations

from typing import Any

from core.clock import format_time, parse_time
from core.context import Services
from relay import delivery
from relay.jobs import dispatch_pending
from tests import test_relay_support as support
from tests.test_relay_support import Reply, advance_to_next_attempt, deliveries_of, register, solo

insecure_webhooks, webhook_clock, receivers = support.insecure_webhooks, support.webhook_clock, support.receivers

EVENTS = 6


class Switch:
    """A receiver's script: 503 while down, 200 once back up."""

    def __init__(self) -> None:
        self.down = True

    def __call__(self, index: int) -> Reply:
        return Reply(503) if self.down else Reply(200)


async def _outage(
    client: Any, services: Services, clock: Any, receiver: Any, token: str
) -> tuple[dict[str, Any], list[str]]:
    """An endpoint whose receiver is down while EVENTS challenges are created, 5 s apart; each event's first
    attempt (the run after it) fails, so every delivery waits out its own ~1 min backoff."""
    endpoint = await register(client, token, receiver, event_types=["challenge.created"])
    challenge_ids = []
    for index in range(EVENTS):
        challenge_ids.append(await solo(client, token, f"deal {index}"))
        await dispatch_pending(services)
        clock.advance(5)
    return endpoint, challenge_ids


async def _backlog(client: Any, endpoint_id: str, token: str) -> dict[str, Any]:
    response = await client.get(f"/webhooks/{endpoint_id}", token=token)
    assert response.status == 200, response.text
    return response.json()["backlog"]


async def test_a_receiver_back_after_an_outage_gets_its_whole_backlog_in_one_scheduled_run(
    client, services, clock, receivers, make_user
):
    from api.jobs import run_scheduled

    switch = Switch()
    receiver = receivers(switch)
    _, token = await make_user()
    endpoint, challenge_ids = await _outage(client, services, clock, receiver, token)
    waiting = await deliveries_of(services, endpoint["id"])
    assert [(row["status"], row["attempt_count"]) for row in waiting] == [("PENDING", 1)] * EVENTS
    assert len(receiver.received) == EVENTS  # one failed first attempt each
    backlog = await _backlog(client, endpoint["id"], token)
    assert backlog["pending"] == EVENTS
    assert backlog["oldest_pending_age_seconds"] == int(
        (clock.now() - parse_time(waiting[0]["created_at"])).total_seconds()
    )
    assert backlog["next_attempt_at"] == min(row["next_attempt_at"] for row in waiting)

    # The receiver is back; the clock reaches the first delivery's retry only: the later ones are not due yet.
    switch.down = False
    await advance_to_next_attempt(services, clock, waiting[0]["id"])
    assert any(parse_time(row["next_attempt_at"]) > clock.now() for row in waiting)
    report = await run_scheduled(services)

    assert report.failures == {}
    assert report.results["relay_dispatch"]["webhooks_delivered"] == EVENTS
    delivered = receiver.verified[EVENTS:]
    assert [payload["data"]["challenge_id"] for payload in delivered] == challenge_ids  # all of them, in order
    stored = await deliveries_of(services, endpoint["id"])
    assert [(row["status"], row["attempt_count"]) for row in stored] == [("DELIVERED", 2)] * EVENTS
    assert await _backlog(client, endpoint["id"], token) == {
        "pending": 0,
        "oldest_pending_age_seconds": None,
        "next_attempt_at": None,
    }


async def test_while_the_receiver_is_down_each_run_costs_one_attempt_and_the_rest_keep_their_schedule(
    client, services, clock, receivers, make_user
):
    receiver = receivers(Switch())
    _, token = await make_user()
    endpoint, _ = await _outage(client, services, clock, receiver, token)
    before = await deliveries_of(services, endpoint["id"])
    # Every delivery is due again; the run tries the first in line, which fails, and stops there.
    clock.set(max(parse_time(row["next_attempt_at"]) for row in before))

    report = await dispatch_pending(services)

    assert (report["webhooks_retrying"], report["webhooks_delivered"]) == (1, 0)
    assert len(receiver.received) == EVENTS + 1
    after = await deliveries_of(services, endpoint["id"])
    assert after[0]["attempt_count"] == 2 and parse_time(after[0]["next_attempt_at"]) > clock.now()
    assert [(row["attempt_count"], row["next_attempt_at"]) for row in after[1:]] == [
        (row["attempt_count"], row["next_attempt_at"]) for row in before[1:]
    ]
    assert (await _backlog(client, endpoint["id"], token))["pending"] == EVENTS


async def test_a_backlog_beyond_one_runs_attempts_carries_on_at_the_next_run(
    client, services, clock, receivers, make_user
):
    switch = Switch()
    receiver = receivers(switch)
    _, token = await make_user()
    endpoint, challenge_ids = await _outage(client, services, clock, receiver, token)
    waiting = await deliveries_of(services, endpoint["id"])
    switch.down = False
    await advance_to_next_attempt(services, clock, waiting[0]["id"])

    first = await delivery.send_due(services, limit=4)

    assert first["delivered"] == 4
    # What the bound left is due now (the receiver answered), not at its old backoff.
    left = [row for row in await deliveries_of(services, endpoint["id"]) if row["status"] == "PENDING"]
    assert len(left) == EVENTS - 4
    assert all(row["next_attempt_at"] == format_time(clock.now()) for row in left)
    assert (await _backlog(client, endpoint["id"], token))["pending"] == EVENTS - 4
    clock.advance(60)  # the next cron tick
    second = await delivery.send_due(services, limit=4)

    assert second["delivered"] == EVENTS - 4
    assert [payload["data"]["challenge_id"] for payload in receiver.verified[EVENTS:]] == challenge_ids


async def test_a_receiver_failing_again_mid_backlog_stops_the_drain_there(
    client, services, clock, receivers, make_user
):
    answers = iter([503] * EVENTS + [200, 200, 500])
    receiver = receivers(lambda index: Reply(next(answers, 200)))
    _, token = await make_user()
    endpoint, _ = await _outage(client, services, clock, receiver, token)
    waiting = await deliveries_of(services, endpoint["id"])
    await advance_to_next_attempt(services, clock, waiting[0]["id"])

    report = await dispatch_pending(services)

    assert (report["webhooks_delivered"], report["webhooks_retrying"]) == (2, 1)
    stored = await deliveries_of(services, endpoint["id"])
    assert [row["status"] for row in stored] == ["DELIVERED", "DELIVERED"] + ["PENDING"] * (EVENTS - 2)
    assert [row["attempt_count"] for row in stored] == [2, 2, 2] + [1] * (EVENTS - 3)


async def test_no_attempt_starts_once_the_runs_time_budget_is_spent(client, services, clock, receivers, make_user):
    receiver = receivers()
    _, token = await make_user()
    endpoint = await register(client, token, receiver)
    await solo(client, token)
    await delivery.fan_out(services)

    report = await delivery.send_due(services, budget_seconds=0)

    assert report["delivered"] == 0 and receiver.received == []
    assert (await _backlog(client, endpoint["id"], token))["pending"] == 1
    assert (await delivery.send_due(services))["delivered"] == 1


async def test_one_endpoints_long_backlog_does_not_crowd_out_another(client, services, clock, receivers, make_user):
    switch = Switch()
    busy = receivers(switch)
    quiet = receivers()
    _, token = await make_user()
    await _outage(client, services, clock, busy, token)
    quiet_endpoint = await register(client, token, quiet)
    clock.advance(70)  # the event both endpoints get comes after every busy delivery's retry time
    await solo(client, token, "for both")
    await delivery.fan_out(services)
    switch.down = False
    clock.advance(hours=1)  # everything due

    report = await delivery.send_due(services, limit=3)

    # Each endpoint's first in line goes before either one's backlog: the quiet one is not starved.
    assert report["delivered"] == 3
    assert len(quiet.verified) == 1
    assert len(busy.received) == EVENTS + 2  # the outage's failures, then its first two in line
    assert (await _backlog(client, quiet_endpoint["id"], token))["pending"] == 0


async def test_get_webhook_is_the_owners_only(client, make_user):
    _, alice = await make_user()
    _, bob = await make_user()
    created = (await client.post("/webhooks", json={"url": "https://hooks.example.com/a"}, token=alice)).json()

    mine = await client.get(f"/webhooks/{created['id']}", token=alice)
    assert mine.status == 200
    body = mine.json()
    assert {key: body[key] for key in ("id", "url", "status")} == {
        "id": created["id"],
        "url": "https://hooks.example.com/a",
        "status": "ACTIVE",
    }
    assert "secret" not in body and body["backlog"]["pending"] == 0
    for token, webhook_id in ((bob, created["id"]), (alice, "no-such-endpoint")):
        response = await client.get(f"/webhooks/{webhook_id}", token=token)
        assert (response.status, response.error_code) == (404, "E6002")
    assert (await client.delete(f"/webhooks/{created['id']}", token=alice)).status == 204
    gone = await client.get(f"/webhooks/{created['id']}", token=alice)
    assert (gone.status, gone.error_code) == (404, "E6002")
