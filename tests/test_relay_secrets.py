"""Webhook signing secrets at rest (issue 12 item 10): sealed with AES-256-GCM under a key derived from a Worker
secret, tagged with a key id so keys rotate; plain rows from before keep working until the relay job seals them.
"""

from __future__ import annotations

import asyncio
import base64
import sqlite3
import time
from typing import Any

import httpx
import pytest
from standardwebhooks.webhooks import Webhook

from core.config import Env
from relay import secretbox
from relay.jobs import dispatch_pending
from relay.jobs import run as relay_job
from tests import test_relay_support as support
from tests.conftest import ADMIN_TOKEN, HMAC_SECRET, use_local_chain_only
from tests.support.anvil import AnvilNode
from tests.test_relay_support import Receiver, deliveries_of, register, rows, solo

insecure_webhooks, webhook_clock, receivers = support.insecure_webhooks, support.webhook_clock, support.receivers

KEY_A = "webhook-key-A-0123456789abcdef0123456789"
KEY_B = "webhook-key-B-0123456789abcdef0123456789"
KEY_C = "webhook-key-C-0123456789abcdef0123456789"


@pytest.fixture
async def alice(make_user):
    return await make_user(email="alice@example.com")


def forms_of(secret: str) -> list[str]:
    """Every way the secret could sit in a row: as given, its base64 part, the raw key as hex or base64url."""
    encoded = secret.removeprefix("whsec_")
    raw = base64.b64decode(encoded)
    return [secret, encoded, raw.hex(), base64.urlsafe_b64encode(raw).decode().rstrip("=")]


async def endpoint_row(services: Any, endpoint_id: str) -> dict[str, Any]:
    (row,) = await rows(services, "SELECT * FROM webhook_endpoints WHERE id = ?", endpoint_id)
    return row


def kid_of(material: str) -> str:
    return secretbox.derive_key(material).kid


async def test_the_secret_is_not_stored_and_deliveries_still_verify(client, services, receivers, alice):
    receiver = receivers()
    _, token = alice
    endpoint = await register(client, token, receiver)

    row = await endpoint_row(services, endpoint["id"])
    dump = repr(row)
    for form in forms_of(endpoint["secret"]):
        assert form not in dump
    assert row["secret"].startswith(f"aesgcm1:{kid_of(HMAC_SECRET)}:")  # HMAC_SECRET-derived key by default

    await solo(client, token)
    await dispatch_pending(services)

    (record,) = receiver.received
    assert record.error is None  # standardwebhooks, holding the secret from the 201, accepted it
    assert Webhook(endpoint["secret"]).verify(record.body, record.headers)["type"] == "challenge.created"


async def test_each_endpoint_gets_a_fresh_nonce_and_a_seal_that_opens_only_on_its_row(client, services, alice):
    first = (await client.post("/webhooks", json={"url": "https://a.example.com/h"}, token=alice[1])).json()
    second = (await client.post("/webhooks", json={"url": "https://b.example.com/h"}, token=alice[1])).json()
    sealed = (await endpoint_row(services, first["id"]))["secret"]
    assert sealed != (await endpoint_row(services, second["id"]))["secret"]
    ring = secretbox.key_ring(services.env)
    assert await secretbox.open_secret(ring, sealed, first["id"]) == first["secret"]
    with pytest.raises(secretbox.SecretUnavailable):
        await secretbox.open_secret(ring, sealed, second["id"])  # copied onto another row it does not open
    tampered = sealed[:-2] + ("AA" if not sealed.endswith("AA") else "BB")
    with pytest.raises(secretbox.SecretUnavailable):
        await secretbox.open_secret(ring, tampered, first["id"])


async def test_plain_rows_from_before_keep_working_and_the_relay_job_seals_them(client, services, receivers, alice):
    receiver = receivers()
    _, token = alice
    endpoint = await register(client, token, receiver)
    # A row as the code before encryption wrote it.
    await services.db.prepare("UPDATE webhook_endpoints SET secret = ?").bind(endpoint["secret"]).run()
    await solo(client, token, "before")
    await dispatch_pending(services)
    assert [record.error for record in receiver.received] == [None]

    report = await relay_job(services)

    assert report["secrets_resealed"] == 1
    row = await endpoint_row(services, endpoint["id"])
    assert endpoint["secret"] not in repr(row) and row["secret"].startswith("aesgcm1:")
    await solo(client, token, "after")
    await dispatch_pending(services)
    assert [record.error for record in receiver.received] == [None, None]
    assert (await relay_job(services))["secrets_resealed"] == 0  # nothing left to do


async def test_a_new_key_opens_old_seals_and_the_job_moves_rows_to_it(
    client, services, receivers, alice, env_vars, log_sink
):
    env_vars["WEBHOOK_SECRET_KEY"] = KEY_A
    receiver = receivers()
    _, token = alice
    endpoint = await register(client, token, receiver)
    assert (await endpoint_row(services, endpoint["id"]))["secret"].startswith(f"aesgcm1:{kid_of(KEY_A)}:")
    rotated = (await client.post(f"/webhooks/{endpoint['id']}/rotate-secret", token=token)).json()["secret"]
    receiver.secret = rotated

    # Rotate the key: the new one first, the old one still listed so what it sealed opens.
    env_vars["WEBHOOK_SECRET_KEY"] = f"{KEY_B},{KEY_A}"
    await solo(client, token, "one")
    await dispatch_pending(services)
    assert [record.error for record in receiver.received] == [None]
    assert (await relay_job(services))["secrets_resealed"] == 1
    row = await endpoint_row(services, endpoint["id"])
    assert row["secret"].startswith(f"aesgcm1:{kid_of(KEY_B)}:")
    assert row["previous_secret"].startswith(f"aesgcm1:{kid_of(KEY_B)}:")  # the overlap secret too

    # The old key can go: every row is sealed with the new one; both signatures still verify.
    env_vars["WEBHOOK_SECRET_KEY"] = KEY_B
    await solo(client, token, "two")
    await dispatch_pending(services)
    record = receiver.received[-1]
    assert record.error is None and Webhook(endpoint["secret"]).verify(record.body, record.headers)

    # A key removed too early: nothing is sent, no attempt is spent, and the log says why (no data).
    env_vars["WEBHOOK_SECRET_KEY"] = KEY_C
    await solo(client, token, "three")
    report = await dispatch_pending(services)
    assert report["webhooks_errors"] == 1 and len(receiver.received) == 2
    waiting = (await deliveries_of(services, endpoint["id"]))[-1]
    assert (waiting["status"], waiting["attempt_count"]) == ("PENDING", 0)
    assert "SecretUnavailable" in "\n".join(log_sink.lines)
    env_vars["WEBHOOK_SECRET_KEY"] = f"{KEY_C},{KEY_B}"
    await dispatch_pending(services)
    assert len(receiver.received) == 3 and receiver.received[-1].error is None
    for line in log_sink.lines:
        assert KEY_A not in line and KEY_B not in line and rotated not in line


async def test_missing_or_weak_keys_are_a_clear_500_naming_the_variable(client, alice, env_vars):
    env_vars.pop("HMAC_SECRET")
    response = await client.post("/webhooks", json={"url": "https://hooks.example.com/h"}, token=alice[1])
    assert (response.status, response.error_code) == (500, "E9001")
    assert response.json()["error"]["details"]["variable"] == "HMAC_SECRET"

    env_vars["WEBHOOK_SECRET_KEY"] = "too-short"
    response = await client.post("/webhooks", json={"url": "https://hooks.example.com/h"}, token=alice[1])
    assert (response.status, response.error_code) == (500, "E9001")
    assert response.json()["error"]["details"]["variable"] == "WEBHOOK_SECRET_KEY"
    assert "too-short" not in response.text

    env_vars["WEBHOOK_SECRET_KEY"] = KEY_A  # enough on its own
    response = await client.post("/webhooks", json={"url": "https://hooks.example.com/h"}, token=alice[1])
    assert response.status == 201


def test_key_ring_orders_configured_keys_first_and_keeps_hmac_secret_for_reading():
    ring = secretbox.key_ring(Env({"WEBHOOK_SECRET_KEY": f" {KEY_B} , {KEY_A},", "HMAC_SECRET": HMAC_SECRET}))
    assert [key.kid for key in ring.keys] == [kid_of(KEY_B), kid_of(KEY_A), kid_of(HMAC_SECRET)]
    assert len({key.key for key in ring.keys}) == 3 and all(len(key.key) == 32 for key in ring.keys)
    # Derived, never the configured text itself (which also keys session tokens).
    assert secretbox.derive_key(HMAC_SECRET).key not in (HMAC_SECRET.encode(), HMAC_SECRET.encode()[:32])


# -- both runtimes: WebCrypto in workerd, pycryptodome on CPython -------------------------------------------


@pytest.fixture
def relay_live_env(env_vars: dict[str, str], anvil: AnvilNode) -> dict[str, str]:
    return use_local_chain_only(env_vars, anvil.url)


def wait_for(receiver: Receiver, count: int, seconds: float = 10) -> None:
    deadline = time.monotonic() + seconds
    while len(receiver.received) < count and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(receiver.received) >= count, f"{len(receiver.received)} of {count} deliveries arrived"


@pytest.mark.slow
def test_sealed_in_either_runtime_opens_in_the_other_and_deliveries_verify(relay_live_env, live_server):
    receiver = Receiver()
    try:
        with httpx.Client(base_url=live_server.url, timeout=30) as http:
            issued = http.post("/admin/api-keys", json={}, headers={"authorization": f"Bearer {ADMIN_TOKEN}"}).json()
            bearer = {"authorization": f"Bearer {issued['api_key']}"}
            created = http.post("/webhooks", json={"url": receiver.url}, headers=bearer)
            assert created.status_code == 201, created.text
            endpoint = created.json()
            receiver.secret = endpoint["secret"]
            with sqlite3.connect(live_server.database_path, timeout=10) as database:
                database.row_factory = sqlite3.Row
                row = dict(
                    database.execute("SELECT * FROM webhook_endpoints WHERE id = ?", (endpoint["id"],)).fetchone()
                )
            for form in forms_of(endpoint["secret"]):
                assert form not in repr(row)
            # The runtime's AES-GCM (WebCrypto in workerd) and this process's (pycryptodome) agree.
            ring = secretbox.key_ring(Env({"HMAC_SECRET": HMAC_SECRET}))
            assert asyncio.run(secretbox.open_secret(ring, row["secret"], endpoint["id"])) == endpoint["secret"]

            assert http.post("/challenges", json={"mode": "SOLO", "title": "sealed"}, headers=bearer).status_code == 201
            wait_for(receiver, 1)
            assert receiver.received[0].error is None, receiver.received[0].error

            # After a rotation the runtime opens both sealed secrets and signs with both.
            rotated = http.post(f"/webhooks/{endpoint['id']}/rotate-secret", headers=bearer)
            assert rotated.status_code == 200, rotated.text
            receiver.secret = rotated.json()["secret"]
            assert http.post("/challenges", json={"mode": "SOLO", "title": "again"}, headers=bearer).status_code == 201
            wait_for(receiver, 2)
            record = receiver.received[1]
            assert record.error is None, record.error
            assert len(record.headers["webhook-signature"].split()) == 2
            assert Webhook(endpoint["secret"]).verify(record.body, record.headers)
    finally:
        receiver.stop()
