"""Issue 15 item 4: rotation without gaps (a configurable overlap) and the receiver-side check, agreeing with the
reference library (`standardwebhooks`) on padded and unpadded secrets, with and without `whsec_`, and on the
±5 minute timestamp tolerance."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta

import pytest
from standardwebhooks.webhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError as ReferenceError

from core.clock import unix_seconds
from relay import signing
from relay.receiver import WebhookVerificationError, receiver_key, verify_delivery
from tests.test_relay_support import rows

HOOK = "https://hooks.example.com/tattlehash"

NOW = datetime(2026, 11, 24, 12, 0, 0, tzinfo=UTC)
BODY = b'{"type":"challenge.created","data":{}}'


def signed(secrets: list[str], when: datetime = NOW, msg_id: str = "msg_1") -> dict[str, str]:
    return signing.headers(secrets, msg_id, unix_seconds(when), BODY)


@pytest.mark.parametrize("overlap, until", [("3600", "2026-11-24T13:00:00.000Z"), ("0", "2026-11-24T12:00:00.000Z"),
                                            ("", "2026-11-25T12:00:00.000Z"), ("-5", "2026-11-25T12:00:00.000Z"),
                                            ("99999999", "2026-12-01T12:00:00.000Z")])  # fmt: skip
async def test_the_rotation_overlap_is_configurable(client, make_user, services, env_vars, overlap, until):
    alice = await make_user(email="alice@example.com")
    env_vars["WEBHOOK_ROTATION_OVERLAP_SECONDS"] = overlap
    endpoint = (await client.post("/webhooks", json={"url": HOOK}, token=alice[1])).json()

    rotated = await client.post(f"/webhooks/{endpoint['id']}/rotate-secret", token=alice[1])

    assert rotated.status == 200
    (stored,) = await rows(services, "SELECT previous_secret_until FROM webhook_endpoints")
    assert stored["previous_secret_until"] == until


@pytest.fixture
def reference_clock(monkeypatch):
    """The reference library reads the wall clock: pin it to NOW."""
    monkeypatch.setattr("standardwebhooks.webhooks.datetime", _FixedDatetime)


def test_both_signatures_verify_during_a_rotation_and_each_secret_alone_verifies_its_own(reference_clock):
    old, new = signing.new_secret(), signing.new_secret()
    headers = signed([new, old])

    assert headers["webhook-signature"].count("v1,") == 2
    for secret in (new, old):
        verify_delivery(secret, headers, BODY, NOW)
        assert Webhook(secret).verify(BODY, headers)
    with pytest.raises(WebhookVerificationError):
        verify_delivery(signing.new_secret(), headers, BODY, NOW)


@pytest.mark.parametrize("form", ["prefixed", "bare", "unpadded", "bare-unpadded"])
def test_the_receiver_takes_secrets_as_receivers_store_them(form, reference_clock):
    # 32 bytes: base64 with one '=' of padding, so "unpadded" is a different string.
    raw = bytes(range(32))
    padded = base64.b64encode(raw).decode()
    assert padded.endswith("=")
    secret = {"prefixed": "whsec_" + padded, "bare": padded, "unpadded": "whsec_" + padded.rstrip("="),
              "bare-unpadded": padded.rstrip("=")}[form]  # fmt: skip
    headers = signed(["whsec_" + padded])

    assert receiver_key(secret) == raw
    verify_delivery(secret, headers, BODY, NOW)
    if form in ("prefixed", "bare"):  # the reference library takes these two forms
        assert Webhook(secret).verify(BODY, headers)


@pytest.mark.parametrize("offset, genuine", [(-300, True), (300, True), (-301, False), (301, False)])
def test_the_timestamp_tolerance_is_five_minutes_both_ways_like_the_reference(offset, genuine, reference_clock):
    secret = signing.new_secret()
    headers = signed([secret], NOW + timedelta(seconds=offset))

    if genuine:
        verify_delivery(secret, headers, BODY, NOW)
    else:
        with pytest.raises(WebhookVerificationError, match="tolerance"):
            verify_delivery(secret, headers, BODY, NOW)
    # The reference library (its clock pinned to NOW) agrees.
    if genuine:
        assert Webhook(secret).verify(BODY, headers)
    else:
        with pytest.raises(ReferenceError):
            Webhook(secret).verify(BODY, headers)


class _FixedDatetime(datetime):
    @classmethod
    def now(cls, tz=None):  # type: ignore[override]
        return NOW if tz is None else NOW.astimezone(tz)


@pytest.mark.parametrize(
    "change",
    [
        {"webhook-signature": "v2,AAAA"},
        {"webhook-timestamp": "12.5"},
        {"webhook-timestamp": "\uff11\uff12\uff13"},  # full-width digits: isdigit() alone would take them
        {"webhook-id": "msg_other"},
    ],
)
def test_tampered_or_malformed_deliveries_are_refused(change):
    secret = signing.new_secret()
    headers = {**signed([secret]), **change}
    with pytest.raises(WebhookVerificationError):
        verify_delivery(secret, headers, BODY, NOW)


def test_a_missing_header_or_a_changed_body_is_refused():
    secret = signing.new_secret()
    headers = signed([secret])
    with pytest.raises(WebhookVerificationError, match="webhook-id"):
        verify_delivery(secret, {k: v for k, v in headers.items() if k != "webhook-id"}, BODY, NOW)
    with pytest.raises(WebhookVerificationError, match="no matching"):
        verify_delivery(secret, headers, BODY + b" ", NOW)
