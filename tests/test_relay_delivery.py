"""Webhook delivery to real receivers on 127.0.0.1 (seed phase-6 gates), each verified with `standardwebhooks`.

Time moves only through the ManualClock: retries are reached by setting the clock to the recorded
next attempt time, never by sleeping through a backoff.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from email.utils import format_datetime

import pytest

from core.clock import format_time, parse_time
from core.context import Services
from relay import delivery
from relay.jobs import after_response, dispatch_pending
from relay.store import DeliveryKey
from tests import test_relay_support as support
from tests.conftest import MIGRATIONS
from tests.test_relay_support import (
    Reply,
    advance_to_next_attempt,
    attempts_of,
    deliveries_of,
    event_types,
    register,
    rows,
    solo,
)

# The receiver fixtures, registered for this module.
insecure_webhooks, webhook_clock, receivers = support.insecure_webhooks, support.webhook_clock, support.receivers


@pytest.fixture
async def alice(make_user):
    return await make_user(email="alice@example.com")


async def test_dispatches_event_to_registered_endpoint(client, services, receivers, alice):
    receiver = receivers()
    _, token = alice
    endpoint = await register(client, token, receiver)
    challenge_id = await solo(client, token, confirm=True)

    report = await dispatch_pending(services)

    assert report["fanout_events"] == 3 and report["webhooks_delivered"] == 3
    assert [record.error for record in receiver.received] == [None, None, None]
    assert event_types(receiver.verified) == ["challenge.created", "challenge.intent_locked", "challenge.completed"]
    created = receiver.verified[0]
    assert created["data"] == {"challenge_id": challenge_id, "mode": "SOLO", "status": "DRAFT"}
    assert created["timestamp"].endswith("Z")
    stored = await deliveries_of(services, endpoint["id"])
    assert {row["status"] for row in stored} == {"DELIVERED"}
    assert all(row["attempt_count"] == 1 and row["last_status_code"] == 200 for row in stored)
    # Nothing left: a second run sends nothing again.
    again = await dispatch_pending(services)
    assert again["fanout_events"] == 0 and again["webhooks_delivered"] == 0
    assert len(receiver.received) == 3


async def test_signs_payload_with_hmac(client, services, receivers, alice, clock):
    receiver = receivers()
    _, token = alice
    endpoint = await register(client, token, receiver)
    await solo(client, token)
    await dispatch_pending(services)

    [record] = receiver.received
    assert record.error is None  # standardwebhooks accepted id, timestamp and signature
    (delivery_row,) = await deliveries_of(services, endpoint["id"])
    assert record.headers["webhook-id"] == "msg_" + delivery_row["id"]
    assert record.headers["webhook-timestamp"] == str(int(clock.now().timestamp()))
    assert record.headers["webhook-signature"].startswith("v1,")
    assert record.headers["content-type"] == "application/json"
    assert set(record.payload) == {"type", "timestamp", "data"}
    # A receiver holding another secret, or seeing one changed byte, rejects it.
    from standardwebhooks.webhooks import Webhook, WebhookVerificationError

    with pytest.raises(WebhookVerificationError):
        Webhook("whsec_" + "A" * 32).verify(record.body, record.headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(endpoint["secret"]).verify(record.body.replace(b"SOLO", b"FIRE"), record.headers)


async def test_retries_on_failure_with_backoff(client, services, receivers, alice, clock):
    receiver = receivers(lambda index: Reply(500 if index < 2 else 200, body=b"oops"))
    _, token = alice
    endpoint = await register(client, token, receiver)
    await solo(client, token)

    await dispatch_pending(services)
    (row,) = await deliveries_of(services, endpoint["id"])
    assert (row["status"], row["attempt_count"], row["last_status_code"]) == ("PENDING", 1, 500)
    assert row["last_error"] == "http_status"  # classified; the receiver's "oops" is not kept
    clock.advance(30)  # not due yet: nothing is sent
    await dispatch_pending(services)
    assert len(receiver.received) == 1

    waited = [await advance_to_next_attempt(services, clock, row["id"])]
    await dispatch_pending(services)
    waited.append(await advance_to_next_attempt(services, clock, row["id"]))
    await dispatch_pending(services)

    assert 54 - 30 <= waited[0] <= 66 - 30  # ~1 min after the first attempt (30 s had already passed)
    assert 270 <= waited[1] <= 330  # ~5 min after the second
    (row,) = await deliveries_of(services, endpoint["id"])
    assert (row["status"], row["attempt_count"], row["last_status_code"]) == ("DELIVERED", 3, 200)
    assert row["delivered_at"] == format_time(clock.now()) and row["next_attempt_at"] is None
    attempts = await attempts_of(services, row["id"])
    assert [(a["attempt_number"], a["status_code"]) for a in attempts] == [(1, 500), (2, 500), (3, 200)]
    assert all(a["duration_ms"] >= 0 for a in attempts)
    # One message, three tries: the same webhook-id each time, a fresh timestamp and signature each time.
    assert {record.headers["webhook-id"] for record in receiver.received} == {"msg_" + row["id"]}
    assert len({record.headers["webhook-timestamp"] for record in receiver.received}) == 3
    assert [record.error for record in receiver.received] == [None, None, None]
    assert len({record.body for record in receiver.received}) == 1


async def test_marks_as_failed_after_max_retries(client, services, receivers, alice, clock):
    receiver = receivers(lambda index: Reply(503))
    _, token = alice
    endpoint = await register(client, token, receiver)
    await solo(client, token)
    await dispatch_pending(services)
    (row,) = await deliveries_of(services, endpoint["id"])

    waits = []
    for _ in range(delivery.MAX_ATTEMPTS - 1):
        waits.append(await advance_to_next_attempt(services, clock, row["id"]))
        await dispatch_pending(services)

    for waited, base in zip(waits, [60, 300, 1800, 7200, 18000, 36000, 36000], strict=True):
        assert base * 0.9 <= waited <= base * 1.1
    (row,) = await deliveries_of(services, endpoint["id"])
    assert (row["status"], row["attempt_count"], row["next_attempt_at"]) == ("FAILED", 8, None)
    assert len(await attempts_of(services, row["id"])) == 8
    clock.advance(days=3)
    await dispatch_pending(services)
    assert len(receiver.received) == 8  # FAILED is final
    # The endpoint stays active for other events: only 410 disables it.
    assert (await client.get("/webhooks", token=alice[1])).json()["items"][0]["status"] == "ACTIVE"


async def test_410_disables_the_endpoint_and_cancels_what_was_waiting(client, services, receivers, alice):
    receiver = receivers(lambda index: Reply(410, body=b"gone"))
    _, token = alice
    endpoint = await register(client, token, receiver)
    await solo(client, token)
    await solo(client, token)
    # Only the first delivery is attempted in this run; the second is waiting when the 410 arrives.
    await delivery.fan_out(services)
    await delivery.send_due(services, limit=1)

    first, second = await deliveries_of(services, endpoint["id"])
    assert (first["status"], first["last_status_code"]) == ("FAILED", 410)
    assert second["status"] == "CANCELLED" and second["attempt_count"] == 0
    listed = (await client.get("/webhooks", token=token)).json()["items"]
    assert listed[0]["status"] == "DISABLED" and "410" in listed[0]["disabled_reason"]
    await solo(client, token)
    report = await dispatch_pending(services)
    assert report["fanout_deliveries"] == 0  # disabled endpoints get nothing new
    assert len(receiver.received) == 1


async def test_slow_receiver_times_out_and_is_retried(client, services, receivers, alice, env_vars):
    env_vars["WEBHOOK_TIMEOUT_SECONDS"] = "0.3"
    receiver = receivers(lambda index: Reply(200, delay=1.5))
    _, token = alice
    endpoint = await register(client, token, receiver)
    await solo(client, token)

    await dispatch_pending(services)

    (row,) = await deliveries_of(services, endpoint["id"])
    assert row["status"] == "PENDING" and row["last_status_code"] is None
    assert row["last_error"] == "timeout"
    (attempt,) = await attempts_of(services, row["id"])
    assert 250 <= attempt["duration_ms"] < 1400


async def test_receiver_closing_the_connection_is_a_recorded_failure(client, services, receivers, alice):
    receiver = receivers(lambda index: Reply(close=True) if index == 0 else Reply(204))
    _, token = alice
    endpoint = await register(client, token, receiver)
    await solo(client, token)

    await dispatch_pending(services)

    (row,) = await deliveries_of(services, endpoint["id"])
    assert row["status"] == "PENDING"
    assert row["last_error"] == "connection_error"
    (attempt,) = await attempts_of(services, row["id"])
    assert attempt["status_code"] is None and attempt["error"] == row["last_error"]


async def test_garbage_and_huge_bodies_are_cut_short(client, services, receivers, alice, log_sink):
    garbage = bytes(range(256)) * 400  # ~100 KiB of binary noise
    noisy = receivers(lambda index: Reply(502, body=garbage))
    huge = receivers(lambda index: Reply(200, stream_bytes=64 * 1024 * 1024))
    _, token = alice
    noisy_endpoint = await register(client, token, noisy)
    huge_endpoint = await register(client, token, huge)
    await solo(client, token)

    await dispatch_pending(services)

    (failed,) = await deliveries_of(services, noisy_endpoint["id"])
    assert failed["status"] == "PENDING" and failed["last_status_code"] == 502
    assert failed["last_error"] == "http_status"
    (delivered,) = await deliveries_of(services, huge_endpoint["id"])
    assert delivered["status"] == "DELIVERED"
    # We hung up long before 64 MiB: the receiver's writes failed part way.
    assert huge.received[0].bytes_written < 64 * 1024 * 1024
    logged = "\n".join(log_sink.lines)
    assert "HTTP 502" not in logged and noisy_endpoint["secret"] not in logged and "v1," not in logged


async def test_a_failing_delivery_holds_back_the_rest_of_that_endpoint_only(client, services, receivers, alice):
    broken = receivers(lambda index: Reply(500))
    healthy = receivers()
    _, token = alice
    broken_endpoint = await register(client, token, broken)
    await register(client, token, healthy)
    for index in range(3):
        await solo(client, token, f"c{index}")

    report = await dispatch_pending(services)

    # The broken receiver is tried once this run (the rest of its queue waits); the healthy one gets all, in order.
    assert len(broken.received) == 1 and report["webhooks_retrying"] == 1
    assert [payload["data"]["challenge_id"] for payload in healthy.verified] == [
        row["challenge_id"] for row in await rows(services, "SELECT challenge_id FROM events ORDER BY rowid")
    ]
    waiting = await deliveries_of(services, broken_endpoint["id"])
    assert [row["attempt_count"] for row in waiting] == [1, 0, 0]


async def test_retry_after_pushes_the_next_attempt_out(client, services, receivers, alice, clock):
    later = clock.now() + timedelta(hours=3)
    replies = [
        Reply(503, headers={"retry-after": "7200"}),
        Reply(429, headers={"retry-after": format_datetime(later, usegmt=True)}),
        Reply(200),
    ]
    receiver = receivers(lambda index: replies[index])
    _, token = alice
    endpoint = await register(client, token, receiver)
    await solo(client, token)

    await dispatch_pending(services)
    (row,) = await deliveries_of(services, endpoint["id"])
    assert parse_time(row["next_attempt_at"]) == clock.now() + timedelta(hours=2)  # seconds form, not the 1-min step
    clock.advance(3600)
    await dispatch_pending(services)
    assert len(receiver.received) == 1  # asked for two hours: one hour later nothing is sent
    await advance_to_next_attempt(services, clock, row["id"])
    await dispatch_pending(services)
    (row,) = await deliveries_of(services, endpoint["id"])
    assert row["attempt_count"] == 2 and parse_time(row["next_attempt_at"]) == later  # HTTP-date form
    await advance_to_next_attempt(services, clock, row["id"])
    await dispatch_pending(services)
    assert (await deliveries_of(services, endpoint["id"]))[0]["status"] == "DELIVERED"


async def test_overlapping_runs_never_send_the_same_attempt_twice(
    client, services, receivers, alice, db_path, env_vars, clock, log_sink
):
    from core.config import Env
    from core.logging import Logger
    from local.server import open_database

    receiver = receivers(lambda index: Reply(200, delay=0.02))
    _, token = alice
    endpoint = await register(client, token, receiver)
    for index in range(12):
        await solo(client, token, f"challenge {index}")
    # Two runs, two connections to the same database file, as two isolates would have; every D1 call yields.
    other = Services(env=Env(env_vars), db=open_database(db_path, MIGRATIONS), clock=clock, logger=Logger(log_sink))
    services.db.latency_seconds = other.db.latency_seconds = 0.001
    try:
        reports = await asyncio.gather(dispatch_pending(services), dispatch_pending(other), dispatch_pending(services))
    finally:
        await other.http.aclose()

    ids = [record.headers["webhook-id"] for record in receiver.received]
    assert len(ids) == len(set(ids)) == 12
    assert sum(report["webhooks_delivered"] for report in reports) == 12
    stored = await deliveries_of(services, endpoint["id"])
    assert len(stored) == 12 and {row["status"] for row in stored} == {"DELIVERED"}
    attempts = await rows(services, "SELECT COUNT(*) AS n FROM webhook_attempts")
    assert attempts[0]["n"] == 12
    undispatched = await rows(services, "SELECT COUNT(*) AS n FROM events WHERE dispatched_at IS NULL")
    assert undispatched[0]["n"] == 0


async def test_an_expired_lease_is_taken_over_and_the_late_record_is_ignored(client, services, receivers, alice, clock):
    receiver = receivers()
    _, token = alice
    endpoint = await register(client, token, receiver)
    await solo(client, token)
    await delivery.fan_out(services)
    (row,) = await rows(services, "SELECT * FROM webhook_deliveries WHERE endpoint_id = ?", endpoint["id"])
    key = DeliveryKey(row["id"], row["endpoint_id"], row["attempt_count"], row["next_attempt_at"])
    # A run claims the delivery and then dies before recording anything.
    assert await delivery.claim(services.db, key, "crashed-run", clock.now(), 40)
    assert (await dispatch_pending(services))["webhooks_delivered"] == 0
    assert receiver.received == []
    clock.advance(41)
    assert (await dispatch_pending(services))["webhooks_delivered"] == 1
    # The crashed run waking up late cannot record a second attempt or overwrite the outcome.
    late = delivery.judge(1, clock.now(), delivery.HttpResult(500, 5), clock.now())
    results = await services.db.batch(delivery.record_statements(services.db, key, "crashed-run", late, clock.now()))
    assert [result.changes for result in results] == [0, 0]
    (stored,) = await deliveries_of(services, endpoint["id"])
    assert stored["status"] == "DELIVERED" and len(await attempts_of(services, stored["id"])) == 1


async def test_after_response_sends_the_first_attempt_in_the_background(client, services, receivers, alice, env_vars):
    env_vars["RELAY_DISPATCH_AFTER_RESPONSE"] = "true"
    receiver = receivers()
    _, token = alice
    await register(client, token, receiver)
    await solo(client, token)

    after_response(services)
    assert receiver.received == []  # returned at once; the work is deferred
    await client.adapter.drain()

    assert event_types(receiver.verified) == ["challenge.created"]


async def test_after_response_does_nothing_when_both_relay_flags_are_off(client, services, receivers, alice, env_vars):
    receiver = receivers()
    _, token = alice
    await register(client, token, receiver)
    await solo(client, token)
    env_vars["FF_WEBHOOKS"] = env_vars["FF_NOTIFICATIONS"] = "false"
    after_response(services)
    await client.adapter.drain()
    assert receiver.received == []
    assert (await rows(services, "SELECT COUNT(*) AS n FROM events WHERE dispatched_at IS NULL"))[0]["n"] == 1


async def test_webhooks_flag_off_pauses_sending_and_creates_nothing_new(client, services, receivers, alice, env_vars):
    receiver = receivers()
    _, token = alice
    endpoint = await register(client, token, receiver)
    await solo(client, token)
    await delivery.fan_out(services)
    env_vars["FF_WEBHOOKS"] = "false"
    await solo(client, token)
    report = await dispatch_pending(services)
    assert report["fanout_deliveries"] == 0 and report["webhooks_skipped"] == 1 and receiver.received == []
    env_vars["FF_WEBHOOKS"] = "true"
    await dispatch_pending(services)
    assert len(receiver.received) == 1 and len(await deliveries_of(services, endpoint["id"])) == 1


async def test_url_no_longer_allowed_is_never_called(client, services, receivers, alice, env_vars):
    receiver = receivers()
    _, token = alice
    endpoint = await register(client, token, receiver)
    await solo(client, token)
    env_vars["ALLOW_INSECURE_WEBHOOKS"] = "false"  # e.g. a production deploy of a dev database

    await dispatch_pending(services)

    assert receiver.received == []
    (row,) = await deliveries_of(services, endpoint["id"])
    assert row["status"] == "FAILED" and row["last_error"] == "url_not_allowed"
    assert len(await attempts_of(services, row["id"])) == 1


async def test_deleted_endpoint_gets_nothing_more(client, services, receivers, alice):
    receiver = receivers(lambda index: Reply(500))
    _, token = alice
    endpoint = await register(client, token, receiver)
    await solo(client, token)
    await dispatch_pending(services)
    assert (await client.delete(f"/webhooks/{endpoint['id']}", token=token)).status == 204

    (row,) = await deliveries_of(services, endpoint["id"])
    assert row["status"] == "CANCELLED"
    await solo(client, token)
    report = await dispatch_pending(services)
    assert report["fanout_deliveries"] == 0 and len(receiver.received) == 1


async def test_rotated_secret_signs_the_next_attempt(client, services, receivers, alice, clock):
    """After a rotation, attempts carry `v1,<new> v1,<old>` for 24 h, then only the new signature."""
    from standardwebhooks.webhooks import Webhook, WebhookVerificationError

    receiver = receivers(lambda index: Reply(500 if index == 0 else 200))
    _, token = alice
    endpoint = await register(client, token, receiver)
    await solo(client, token)
    await dispatch_pending(services)
    rotated = await client.post(f"/webhooks/{endpoint['id']}/rotate-secret", token=token)
    receiver.secret = rotated.json()["secret"]
    (row,) = await deliveries_of(services, endpoint["id"])
    await advance_to_next_attempt(services, clock, row["id"])

    await dispatch_pending(services)

    retry = receiver.received[1]
    assert retry.error is None  # the new secret verifies
    assert len(retry.headers["webhook-signature"].split()) == 2
    assert Webhook(endpoint["secret"]).verify(retry.body, retry.headers)  # so does the old one, during the overlap
    assert len(receiver.received[0].headers["webhook-signature"].split()) == 1  # before the rotation: one

    clock.advance(hours=24)
    await solo(client, token)
    await dispatch_pending(services)

    later = receiver.received[2]
    assert later.error is None and len(later.headers["webhook-signature"].split()) == 1
    with pytest.raises(WebhookVerificationError):
        Webhook(endpoint["secret"]).verify(later.body, later.headers)


async def test_deliveries_endpoint_shows_every_attempt_without_secrets(client, services, receivers, alice, clock):
    receiver = receivers(lambda index: Reply(500, body=b"not yet") if index == 0 else Reply(200))
    _, token = alice
    endpoint = await register(client, token, receiver)
    await solo(client, token)
    await dispatch_pending(services)
    (row,) = await deliveries_of(services, endpoint["id"])
    await advance_to_next_attempt(services, clock, row["id"])
    await dispatch_pending(services)

    response = await client.get(f"/webhooks/{endpoint['id']}/deliveries", token=token)

    assert response.status == 200
    (item,) = response.json()["items"]
    assert item["webhook_id"] == "msg_" + row["id"] and item["event_type"] == "challenge.created"
    assert item["status"] == "DELIVERED" and item["attempt_count"] == 2
    assert [(a["attempt_number"], a["status_code"], a["error"]) for a in item["attempts"]] == [
        (1, 500, "http_status"),
        (2, 200, None),
    ]
    assert endpoint["secret"] not in response.text and "whsec_" not in response.text


async def test_a_broken_event_does_not_hold_back_the_others(client, services, receivers, alice, log_sink):
    receiver = receivers()
    _, token = alice
    await register(client, token, receiver)
    await solo(client, token)
    # An event whose payload is not JSON (written by hand; the outbox helper never does this).
    await (
        services.db.prepare(
            "INSERT INTO events (id, type, challenge_id, user_id, payload, created_at) VALUES (?, ?, NULL, ?, ?, ?)"
        )
        .bind("broken-event", "wallet.verified", alice[0], "{not json", "2026-11-24T12:00:00.001Z")
        .run()
    )

    report = await dispatch_pending(services)

    assert report["fanout_events"] == 2 and report["webhooks_delivered"] == 1 and report["webhooks_failed"] == 1
    assert event_types(receiver.verified) == ["challenge.created"]
    broken = await rows(services, "SELECT status, last_error FROM webhook_deliveries WHERE event_id = 'broken-event'")
    assert broken == [{"status": "FAILED", "last_error": "invalid_payload"}]
