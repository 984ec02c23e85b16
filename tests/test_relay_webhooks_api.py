"""The /webhooks API: registration and URL rules, listing without secrets, deletion, rotation, ownership, flags."""

from __future__ import annotations

import base64

import pytest

from relay import secretbox
from tests.conftest import ADMIN_TOKEN
from tests.test_relay_support import rows

HOOK = "https://hooks.example.com/tattlehash"


@pytest.fixture
async def alice(make_user):
    return await make_user(email="alice@example.com")


@pytest.fixture
async def bob(make_user):
    return await make_user(email="bob@example.com")


async def test_register_returns_the_secret_once(client, alice, services, log_sink):
    user_id, token = alice
    response = await client.post(
        "/webhooks",
        json={"url": HOOK, "description": "prod", "event_types": ["challenge.completed", "challenge.created"]},
        token=token,
    )

    assert response.status == 201
    body = response.json()
    assert body["secret"].startswith("whsec_") and len(base64.b64decode(body["secret"][6:])) == 24
    assert body["url"] == HOOK and body["description"] == "prod" and body["status"] == "ACTIVE"
    assert body["event_types"] == ["challenge.created", "challenge.completed"]  # catalogue order, deduplicated
    assert body["disabled_reason"] is None and body["created_at"].endswith("Z")
    listed = await client.get("/webhooks", token=token)
    assert listed.status == 200
    assert listed.json()["items"] == [{key: value for key, value in body.items() if key != "secret"}]
    assert body["secret"] not in listed.text and "whsec_" not in listed.text
    assert body["secret"] not in "\n".join(log_sink.lines)
    (stored,) = await rows(services, "SELECT user_id, secret FROM webhook_endpoints")
    assert stored["user_id"] == user_id and stored["secret"].startswith("aesgcm1:")  # sealed at rest
    assert await secretbox.open_secret(secretbox.key_ring(services.env), stored["secret"], body["id"]) == body["secret"]


async def test_all_event_types_when_none_are_named(client, alice):
    body = (await client.post("/webhooks", json={"url": HOOK}, token=alice[1])).json()
    assert body["event_types"] is None and body["description"] is None


@pytest.mark.parametrize(
    "url",
    [
        "javascript:alert(1)",
        "file:///etc/passwd",
        "http://169.254.169.254/",
        "https://169.254.169.254/latest/meta-data/iam",
        "https://10.0.0.1/",
        "https://user:pass@host.example.com/",
        "https://example.com/" + "a" * 3000,
        "http://example.com/hook",
        "http://127.0.0.1:9000/hook",  # insecure localhost needs ALLOW_INSECURE_WEBHOOKS
        "not a url",
        "",
    ],
)
async def test_bad_urls_are_400_e6001(client, alice, services, url):
    response = await client.post("/webhooks", json={"url": url}, token=alice[1])
    assert (response.status, response.error_code) == (400, "E6001")
    assert response.json()["error"]["details"]["field"] == "url"
    assert await rows(services, "SELECT id FROM webhook_endpoints") == []


async def test_insecure_localhost_is_allowed_in_development(client, alice, env_vars):
    env_vars["ALLOW_INSECURE_WEBHOOKS"] = "true"
    response = await client.post("/webhooks", json={"url": "http://127.0.0.1:9000/hook"}, token=alice[1])
    assert response.status == 201
    refused = await client.post("/webhooks", json={"url": "http://10.1.2.3/hook"}, token=alice[1])
    assert refused.error_code == "E6001"


@pytest.mark.parametrize(
    "body",
    [
        {"url": HOOK, "event_types": ["challenge.exploded"]},
        {"url": HOOK, "event_types": ["CHALLENGE.CREATED"]},
        {"url": HOOK, "event_types": []},
        {"url": HOOK, "event_types": "challenge.created"},
        {"url": HOOK, "description": "x" * 501},
        {"url": HOOK, "secret": "whsec_mine"},
        {"url": 42},
        {},
    ],
)
async def test_invalid_bodies_are_400_e9004(client, alice, body):
    response = await client.post("/webhooks", json=body, token=alice[1])
    assert (response.status, response.error_code) == (400, "E9004")
    assert response.json()["error"]["details"]["fields"]


async def test_delete_is_204_and_someone_elses_is_404(client, alice, bob, services):
    endpoint = (await client.post("/webhooks", json={"url": HOOK}, token=alice[1])).json()

    for token in (bob[1], ADMIN_TOKEN):
        response = await client.delete(f"/webhooks/{endpoint['id']}", token=token)
        assert response.status in {403, 404}
        if response.status == 404:
            assert response.error_code == "E6002"
    assert (await client.delete(f"/webhooks/{endpoint['id']}", token=bob[1])).error_code == "E6002"
    assert len((await client.get("/webhooks", token=alice[1])).json()["items"]) == 1

    deleted = await client.delete(f"/webhooks/{endpoint['id']}", token=alice[1])
    assert deleted.status == 204 and deleted.body == b""
    assert (await client.get("/webhooks", token=alice[1])).json()["items"] == []
    again = await client.delete(f"/webhooks/{endpoint['id']}", token=alice[1])
    assert (again.status, again.error_code) == (404, "E6002")
    (stored,) = await rows(services, "SELECT status, secret FROM webhook_endpoints")
    assert stored["status"] == "DELETED" and stored["secret"] != endpoint["secret"]  # the old secret is gone


@pytest.mark.parametrize("webhook_id", ["00000000-0000-4000-8000-000000000000", "not-a-uuid", "%27%20OR%201%3D1"])
async def test_unknown_ids_are_404_e6002(client, alice, webhook_id):
    for method, path in (
        ("DELETE", f"/webhooks/{webhook_id}"),
        ("POST", f"/webhooks/{webhook_id}/rotate-secret"),
        ("GET", f"/webhooks/{webhook_id}/deliveries"),
    ):
        response = await client.request(method, path, token=alice[1])
        assert (response.status, response.error_code) == (404, "E6002"), (method, path)


async def test_rotate_secret_returns_a_new_secret_only_to_the_owner(client, alice, bob, services):
    endpoint = (await client.post("/webhooks", json={"url": HOOK}, token=alice[1])).json()

    assert (await client.post(f"/webhooks/{endpoint['id']}/rotate-secret", token=bob[1])).error_code == "E6002"
    rotated = await client.post(f"/webhooks/{endpoint['id']}/rotate-secret", token=alice[1])

    assert rotated.status == 200
    body = rotated.json()
    assert body["id"] == endpoint["id"] and body["secret"].startswith("whsec_")
    assert body["secret"] != endpoint["secret"]
    (stored,) = await rows(services, "SELECT secret, previous_secret, previous_secret_until FROM webhook_endpoints")
    ring = secretbox.key_ring(services.env)
    assert await secretbox.open_secret(ring, stored["secret"], endpoint["id"]) == body["secret"]
    # The replaced secret is kept (sealed) for the 24 h overlap.
    assert await secretbox.open_secret(ring, stored["previous_secret"], endpoint["id"]) == endpoint["secret"]
    assert stored["previous_secret_until"] == "2026-11-25T12:00:00.000Z"


async def test_someone_elses_deliveries_are_404(client, alice, bob):
    endpoint = (await client.post("/webhooks", json={"url": HOOK}, token=alice[1])).json()
    response = await client.get(f"/webhooks/{endpoint['id']}/deliveries", token=bob[1])
    assert (response.status, response.error_code) == (404, "E6002")
    mine = await client.get(f"/webhooks/{endpoint['id']}/deliveries", token=alice[1])
    assert mine.json() == {"items": [], "next_cursor": None}


@pytest.mark.parametrize("query", [{"limit": "0"}, {"limit": "51"}, {"limit": "x"}, {"cursor": "!!!"}])
async def test_bad_delivery_queries_are_400(client, alice, query):
    endpoint = (await client.post("/webhooks", json={"url": HOOK}, token=alice[1])).json()
    response = await client.get(f"/webhooks/{endpoint['id']}/deliveries", token=alice[1], query=query)
    assert (response.status, response.error_code) == (400, "E9004")


async def test_deliveries_are_paged_newest_first(client, alice, services, clock):
    from relay import delivery

    endpoint = (await client.post("/webhooks", json={"url": HOOK}, token=alice[1])).json()
    for index in range(5):
        await client.post("/challenges", json={"mode": "SOLO", "title": f"c{index}"}, token=alice[1])
        clock.advance(1)
        await delivery.fan_out(services)  # deliveries only; nothing is sent (no send step here)

    seen, cursor = [], None
    while True:
        query = {"limit": "2", **({"cursor": cursor} if cursor else {})}
        page = (await client.get(f"/webhooks/{endpoint['id']}/deliveries", token=alice[1], query=query)).json()
        seen += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == 5 and len({item["id"] for item in seen}) == 5
    assert [item["created_at"] for item in seen] == sorted((item["created_at"] for item in seen), reverse=True)
    assert all(item["attempts"] == [] and item["status"] == "PENDING" for item in seen)


async def test_endpoint_count_is_capped(client, alice):
    from relay.webhooks import MAX_ENDPOINTS_PER_USER

    for index in range(MAX_ENDPOINTS_PER_USER):
        response = await client.post("/webhooks", json={"url": f"{HOOK}/{index}"}, token=alice[1])
        assert response.status == 201, response.text
    over = await client.post("/webhooks", json={"url": HOOK}, token=alice[1])
    assert (over.status, over.error_code) == (400, "E9004")


async def test_needs_a_user_and_the_flag(client, alice, env_vars):
    assert (await client.post("/webhooks", json={"url": HOOK})).error_code == "E9005"
    assert (await client.get("/webhooks", token=ADMIN_TOKEN)).status in {401, 403}
    env_vars["FF_WEBHOOKS"] = "false"
    response = await client.post("/webhooks", json={"url": HOOK}, token=alice[1])
    assert (response.status, response.error_code) == (503, "E9010")


async def test_deliveries_limit_refuses_non_ascii_digits(client, make_user):
    _, token = await make_user()
    for raw in ("5²", "٣", "0", "x"):
        response = await client.get(
            "/webhooks/2b1f3c1e-1111-4111-8111-111111111111/deliveries", token=token, query={"limit": raw}
        )
        assert (response.status, response.error_code) == (400, "E9004"), raw
