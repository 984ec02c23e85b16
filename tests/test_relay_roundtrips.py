"""Round trips of the /webhooks routes (issue 13): reads in one (auth included), writes in at most two."""

from __future__ import annotations

from unittest.mock import ANY

import pytest

from core.context import Services
from relay import delivery
from tests.test_accounts_roundtrips import Counter
from tests.test_accounts_roundtrips import count as _count

HOOK = "https://hooks.example.com/tattlehash"


@pytest.fixture
def counter(services: Services) -> Counter:
    counted = Counter(services.db)
    services.db = counted  # type: ignore[assignment]
    return counted


@pytest.fixture
async def alice(make_user):
    return await make_user(email="alice@example.com")


async def _deliveries(client, services, clock, token, n):
    """An endpoint with n deliveries (one SOLO challenge's created event each), none sent."""
    endpoint = (
        await client.post("/webhooks", json={"url": HOOK, "event_types": ["challenge.created"]}, token=token)
    ).json()
    for index in range(n):
        assert (
            await client.post("/challenges", json={"mode": "SOLO", "title": f"c{index}"}, token=token)
        ).status == 201
        clock.advance(1)
        await delivery.fan_out(services)
    return endpoint


async def test_webhook_writes_are_at_most_two_round_trips(client, counter: Counter, alice):
    token = alice[1]
    created, trips = await _count(counter, client.post("/webhooks", json={"url": HOOK}, token=token))
    assert created.status == 201, created.text
    assert trips <= 2
    rotated, trips = await _count(counter, client.post(f"/webhooks/{created.json()['id']}/rotate-secret", token=token))
    assert rotated.status == 200 and rotated.json()["secret"] != created.json()["secret"]
    assert trips <= 2
    deleted, trips = await _count(counter, client.delete(f"/webhooks/{created.json()['id']}", token=token))
    assert deleted.status == 204
    assert trips <= 2


async def test_listing_webhooks_is_one_round_trip(client, counter: Counter, alice):
    token = alice[1]
    created = (await client.post("/webhooks", json={"url": HOOK}, token=token)).json()
    listed, trips = await _count(counter, client.get("/webhooks", token=token))
    assert listed.status == 200
    assert [item["id"] for item in listed.json()["items"]] == [created["id"]]
    assert trips == 1


async def test_one_webhook_with_its_backlog_is_one_round_trip(client, counter: Counter, services, clock, alice):
    token = alice[1]
    endpoint = await _deliveries(client, services, clock, token, 2)
    got, trips = await _count(counter, client.get(f"/webhooks/{endpoint['id']}", token=token))
    assert got.status == 200, got.text
    assert got.json()["backlog"] == {"pending": 2, "oldest_pending_age_seconds": 1, "next_attempt_at": ANY}
    assert trips == 1


async def test_deliveries_page_with_attempts_is_one_round_trip(client, counter: Counter, services, clock, alice):
    token = alice[1]
    endpoint = await _deliveries(client, services, clock, token, 3)
    ids = [
        row["id"]
        for row in (
            await services.db.prepare("SELECT id FROM webhook_deliveries ORDER BY created_at DESC, id DESC").all()
        ).results
    ]
    # Attempts on the newest (first page) and the oldest (second page) delivery, numbered out of insert order.
    for attempt_id, delivery_id, number, error in [
        ("a2", ids[0], 2, "timeout"),
        ("a1", ids[0], 1, "connection_refused"),
        ("a3", ids[2], 1, "http_status"),
    ]:
        await (
            services.db.prepare(
                "INSERT INTO webhook_attempts (id, delivery_id, attempt_number, started_at, duration_ms, status_code,"
                " error) VALUES (?, ?, ?, '2026-01-01T00:00:00.000Z', 12, ?, ?)"
            )
            .bind(attempt_id, delivery_id, number, 503 if error == "http_status" else None, error)
            .run()
        )

    first, trips = await _count(
        counter, client.get(f"/webhooks/{endpoint['id']}/deliveries", token=token, query={"limit": "2"})
    )
    assert first.status == 200, first.text
    assert trips == 1
    page = first.json()
    assert [item["id"] for item in page["items"]] == ids[:2]
    assert [(a["attempt_number"], a["error"]) for a in page["items"][0]["attempts"]] == [
        (1, "connection_refused"),
        (2, "timeout"),
    ]
    assert page["items"][1]["attempts"] == []
    assert page["items"][0]["webhook_id"] == "msg_" + ids[0]

    second, trips = await _count(
        counter,
        client.get(
            f"/webhooks/{endpoint['id']}/deliveries", token=token, query={"limit": "2", "cursor": page["next_cursor"]}
        ),
    )
    assert trips == 1
    assert [item["id"] for item in second.json()["items"]] == ids[2:]
    assert [(a["status_code"], a["error"]) for a in second.json()["items"][0]["attempts"]] == [(503, "http_status")]
    assert second.json()["next_cursor"] is None


async def test_someone_elses_deliveries_stay_404_whatever_the_cursor(client, alice, make_user):
    endpoint = (await client.post("/webhooks", json={"url": HOOK}, token=alice[1])).json()
    _, bob = await make_user()
    for query in ({}, {"cursor": "!!!"}):
        response = await client.get(f"/webhooks/{endpoint['id']}/deliveries", token=bob, query=query)
        assert (response.status, response.error_code) == (404, "E6002")
