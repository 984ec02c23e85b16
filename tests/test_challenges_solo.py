"""SOLO mode end to end through the HTTP API (seed phase-4 gates), plus creation validation and reads."""

from __future__ import annotations

import sqlite3

import pytest

from challenges import attestation
from tests.conftest import ADMIN_TOKEN


@pytest.fixture
async def creator(make_user):
    return await make_user(email="creator@example.com")


async def create(client, token, **body):
    payload = {"mode": "SOLO", "title": "Run a marathon", **body}
    return await client.post("/challenges", json=payload, token=token)


async def test_creates_challenge_in_draft(client, creator):
    user_id, token = creator
    response = await create(client, token, description="42 km")
    assert response.status == 201
    body = response.json()
    assert body["status"] == "DRAFT" and body["mode"] == "SOLO"
    assert body["creator_user_id"] == user_id
    assert body["created_at"].endswith("Z")
    events = (await client.get(f"/challenges/{body['id']}/events", token=token)).json()
    assert [entry["to_status"] for entry in events["history"]] == ["DRAFT"]
    assert [event["type"] for event in events["events"]] == ["challenge.created"]


async def test_draft_to_intent_locked_to_completed_with_final_hash(client, creator):
    _, token = creator
    challenge = (await create(client, token)).json()
    confirmed = await client.post(f"/challenges/{challenge['id']}/confirm", token=token)
    assert confirmed.status == 200
    body = confirmed.json()
    assert body["status"] == "COMPLETED"
    assert body["intent_locked_at"] and body["completed_at"]
    history = (await client.get(f"/challenges/{challenge['id']}/events", token=token)).json()["history"]
    assert [(entry["from_status"], entry["to_status"]) for entry in history] == [
        (None, "DRAFT"), ("DRAFT", "INTENT_LOCKED"), ("INTENT_LOCKED", "COMPLETED"),
    ]  # fmt: skip
    assert len(body["initiator_hash"]) == 64 and len(body["final_hash"]) == 64
    final = attestation.final_terms(body["id"], body["initiator_hash"], None, None, body["completed_at"])
    assert attestation.digest(final) == body["final_hash"]


async def test_resolution_due_at_waits_then_resolves(client, creator, clock):
    _, token = creator
    due = "2026-11-25T12:00:00Z"
    challenge = (await create(client, token, resolution_due_at=due)).json()
    confirmed = (await client.post(f"/challenges/{challenge['id']}/confirm", token=token)).json()
    assert confirmed["status"] == "AWAITING_RESOLUTION"
    assert confirmed["deadlines"]["resolution_due_at"] == "2026-11-25T12:00:00.000Z"
    resolved = await client.post(f"/challenges/{challenge['id']}/resolve", json={"outcome": "CREATOR_WIN"}, token=token)
    assert resolved.status == 200
    assert resolved.json()["status"] == "COMPLETED" and resolved.json()["outcome"] == "CREATOR_WIN"


async def test_prevents_invalid_transitions(client, creator, db_path):
    _, token = creator
    challenge = (await create(client, token)).json()
    cid = challenge["id"]
    for action in ("send", "accept", "verify", "dispute"):
        response = await client.post(f"/challenges/{cid}/{action}", token=token)
        assert response.status in {403, 404, 409}, action
        assert response.error_code in {"E3014", "E3012", "E9008"}, (action, response.json())
    await client.post(f"/challenges/{cid}/confirm", token=token)
    before = _snapshot(db_path, cid)
    for action in ("confirm", "cancel", "complete"):
        response = await client.post(f"/challenges/{cid}/{action}", token=token)
        assert (response.status, response.error_code) == (409, "E3014"), action
    bad = await client.post(f"/challenges/{cid}/resolve", json={"outcome": "DRAW"}, token=token)
    assert (bad.status, bad.error_code) == (409, "E3020")
    assert _snapshot(db_path, cid) == before


def _snapshot(db_path, challenge_id):
    with sqlite3.connect(db_path) as connection:
        return (
            connection.execute("SELECT * FROM challenges WHERE id = ?", (challenge_id,)).fetchall(),
            connection.execute("SELECT COUNT(*) FROM challenge_status_history").fetchall(),
            connection.execute("SELECT COUNT(*) FROM events").fetchall(),
        )


async def test_cancel_draft(client, creator):
    _, token = creator
    challenge = (await create(client, token)).json()
    cancelled = await client.post(f"/challenges/{challenge['id']}/cancel", token=token)
    assert cancelled.json()["status"] == "CANCELLED"


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"mode": "DUEL"}, 400, "E3001"),
        ({"counterparty_user_id": "2b1f3c1e-1111-4111-8111-111111111111"}, 400, "E3002"),
        ({"counterparty_wallet": "0x" + "ab" * 20}, 400, "E3002"),
        ({"title": "x" * 201}, 400, "E9004"),
        ({"title": ""}, 400, "E9004"),
        ({"resolution_due_at": "2020-01-01T00:00:00Z"}, 400, "E9004"),
        ({"resolution_due_at": "tomorrow"}, 400, "E9004"),
        ({"surprise": 1}, 400, "E9004"),
        ({"mode": "GATEKEEPER"}, 400, "E3023"),
        ({"mode": "FIRE", "counterparty_wallet": "0x" + "ab" * 20}, 400, "E3003"),
    ],
)
async def test_bad_creation_changes_nothing(client, creator, db_path, body, status, code):
    _, token = creator
    response = await create(client, token, **body)
    assert (response.status, response.error_code) == (status, code), response.json()
    with sqlite3.connect(db_path) as connection:
        assert connection.execute("SELECT COUNT(*) FROM challenges").fetchone()[0] == 0
        assert connection.execute("SELECT COUNT(*) FROM events").fetchone()[0] == 0


async def test_strangers_get_404_and_admin_can_read(client, creator, make_user):
    _, token = creator
    _, stranger = await make_user()
    challenge = (await create(client, token)).json()
    for path in (f"/challenges/{challenge['id']}", f"/challenges/{challenge['id']}/events"):
        response = await client.get(path, token=stranger)
        assert (response.status, response.error_code) == (404, "E3010")
    unknown = await client.get("/challenges/2b1f3c1e-1111-4111-8111-111111111111", token=token)
    assert unknown.json() == (await client.get(f"/challenges/{challenge['id']}", token=stranger)).json()
    assert (await client.post(f"/challenges/{challenge['id']}/cancel", token=stranger)).status == 404
    assert (await client.get(f"/challenges/{challenge['id']}", token=ADMIN_TOKEN)).status == 200
    assert (await client.get("/challenges/not-a-uuid", token=token)).error_code == "E3010"


async def test_list_filters_and_cursor_pagination(client, creator, make_user, clock):
    _, token = creator
    _, other = await make_user()
    ids = []
    for index in range(5):
        clock.advance(1)
        ids.append((await create(client, token, title=f"c{index}")).json()["id"])
    await create(client, other, title="not mine")
    await client.post(f"/challenges/{ids[0]}/confirm", token=token)
    first = (await client.get("/challenges", token=token, query={"limit": 2})).json()
    assert [item["id"] for item in first["items"]] == [ids[4], ids[3]]
    second = (await client.get("/challenges", token=token, query={"limit": 2, "cursor": first["next_cursor"]})).json()
    assert [item["id"] for item in second["items"]] == [ids[2], ids[1]]
    third = (await client.get("/challenges", token=token, query={"limit": 2, "cursor": second["next_cursor"]})).json()
    assert [item["id"] for item in third["items"]] == [ids[0]] and third["next_cursor"] is None
    completed = (await client.get("/challenges", token=token, query={"status": "COMPLETED"})).json()
    assert [item["id"] for item in completed["items"]] == [ids[0]]
    for query in ({"cursor": "garbage!"}, {"limit": 0}, {"limit": "x"}, {"status": "NOPE"}, {"mode": "duel"}):
        response = await client.get("/challenges", token=token, query=query)
        assert (response.status, response.error_code) == (400, "E9004"), query


async def test_idempotency_key(client, creator, db_path):
    _, token = creator
    headers = {"idempotency-key": "create-1"}
    first = await client.post("/challenges", json={"mode": "SOLO", "title": "a"}, token=token, headers=headers)
    again = await client.post("/challenges", json={"mode": "SOLO", "title": "a"}, token=token, headers=headers)
    assert first.status == again.status == 201
    assert first.json() == again.json()
    assert again.headers.get("idempotent-replayed") == "true"
    other = await client.post("/challenges", json={"mode": "SOLO", "title": "b"}, token=token, headers=headers)
    assert (other.status, other.error_code) == (409, "E9009")
    with sqlite3.connect(db_path) as connection:
        assert connection.execute("SELECT COUNT(*) FROM challenges").fetchone()[0] == 1


async def test_challenges_flag_off(client, creator, env_vars):
    _, token = creator
    env_vars["FF_CHALLENGES"] = "false"
    response = await create(client, token)
    assert (response.status, response.error_code) == (503, "E9010")


async def test_solo_expires_when_resolution_due_passes(client, creator, services, clock):
    from api.jobs import run_scheduled

    _, token = creator
    challenge = (await create(client, token, resolution_due_at="2026-11-24T13:00:00Z")).json()
    await client.post(f"/challenges/{challenge['id']}/confirm", token=token)
    clock.advance(minutes=59)
    await run_scheduled(services)
    assert (await client.get(f"/challenges/{challenge['id']}", token=token)).json()["status"] == "AWAITING_RESOLUTION"
    clock.advance(minutes=1)
    report = await run_scheduled(services)
    assert report.results["challenge_timeouts"]["moved"] == 1
    body = (await client.get(f"/challenges/{challenge['id']}", token=token)).json()
    assert body["status"] == "EXPIRED"
    events = (await client.get(f"/challenges/{challenge['id']}/events", token=token)).json()
    assert events["history"][-1]["actor"] == "system:timeout"
    assert events["events"][-1]["type"] == "challenge.expired"
    # Running again does nothing: the job is idempotent.
    again = await run_scheduled(services)
    assert again.results["challenge_timeouts"] == {"moved": 0, "skipped": 0, "deferred": 0, "scanned": 0}
