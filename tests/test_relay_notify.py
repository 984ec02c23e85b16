"""Email through Resend and SMS through Twilio, asserted request by request with pytest-httpx (no network)."""

from __future__ import annotations

import asyncio
import base64
import json
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest
from pytest_httpx import HTTPXMock

from relay import delivery, notify
from relay.jobs import after_response, dispatch_pending
from tests import test_relay_support as support
from tests.support import messaging
from tests.support.messaging import EMAIL_FROM, FROM_NUMBER, RESEND_KEY, SID, TWILIO_TOKEN, TWILIO_URL
from tests.test_relay_support import Reply, register, rows

providers = messaging.providers  # the fixture, shared with the other provider suites

insecure_webhooks, webhook_clock, receivers = support.insecure_webhooks, support.webhook_clock, support.receivers

CREATOR_EMAIL, CREATOR_PHONE = "creator@example.com", "+14155550100"
COUNTER_EMAIL, COUNTER_PHONE = "counter@example.com", "+447700900123"


async def person(client, make_user, email: str, phone: str | None) -> tuple[str, str]:
    # Verified contacts, as an operator gives them (PATCH /me only makes a new one pending: test_accounts_contacts.py).
    return await make_user(email=email, phone=phone)


@pytest.fixture
async def parties(client, make_user):
    creator = await person(client, make_user, CREATOR_EMAIL, CREATOR_PHONE)
    counterparty = await person(client, make_user, COUNTER_EMAIL, COUNTER_PHONE)
    return creator, counterparty


def gatekeeper(counterparty_id: str, title: str = "OTC swap") -> dict[str, Any]:
    side = {"network": "eth-mainnet", "funds_checks": []}
    return {
        "mode": "GATEKEEPER",
        "title": title,
        "counterparty_user_id": counterparty_id,
        "gatekeeper_requirements": {
            "creator": {"wallet_address": "0x" + "11" * 20, **side},
            "counterparty": {"wallet_address": "0x" + "22" * 20, **side},
        },
    }


async def invite(client, parties, title: str = "OTC swap") -> str:
    (_, creator_token), (counterparty_id, _) = parties
    created = await client.post("/challenges", json=gatekeeper(counterparty_id, title), token=creator_token)
    assert created.status == 201, created.text
    challenge_id = created.json()["id"]
    assert (await client.post(f"/challenges/{challenge_id}/send", token=creator_token)).status == 200
    return challenge_id


async def notifications(services) -> list[dict[str, Any]]:
    return await rows(
        services,
        "SELECT n.*, u.email FROM notifications n JOIN users u ON u.id = n.user_id"
        " JOIN events e ON e.id = n.event_id ORDER BY e.rowid, u.email, n.channel",
    )


def ok_responses(httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_response(
        url=notify.RESEND_URL,
        method="POST",
        json={"id": "49a3999c-0ce1-4ea6-ab68-afcd6dc2e794"},
        is_reusable=True,
        is_optional=True,
    )
    httpx_mock.add_response(
        url=TWILIO_URL,
        method="POST",
        status_code=201,
        json={"sid": "SM" + "f" * 32},
        is_reusable=True,
        is_optional=True,
    )


async def test_who_gets_what(client, services, parties, providers, clock):
    (_, creator_token), (_, counterparty_token) = parties
    challenge_id = await invite(client, parties)
    assert (await client.post(f"/challenges/{challenge_id}/accept", token=counterparty_token)).status == 200
    assert (await client.post(f"/challenges/{challenge_id}/cancel", token=creator_token)).status == 200
    await client.post("/challenges", json={"mode": "SOLO", "title": "s"}, token=creator_token)  # created: nobody
    due = await client.post(
        "/challenges",
        json={"mode": "SOLO", "title": "d", "resolution_due_at": "2026-11-25T00:00:00Z"},
        token=creator_token,
    )
    await client.post(f"/challenges/{due.json()['id']}/confirm", token=creator_token)
    clock.advance(days=1)
    from api.jobs import challenge_timeouts

    await challenge_timeouts(services)

    await delivery.fan_out(services)

    got = [(row["template"], row["email"], row["channel"]) for row in await notifications(services)]
    assert got == [
        ("challenge.invitation_sent", COUNTER_EMAIL, "EMAIL"),
        ("challenge.invitation_sent", COUNTER_EMAIL, "SMS"),
        ("challenge.accepted", CREATOR_EMAIL, "EMAIL"),
        ("challenge.accepted", CREATOR_EMAIL, "SMS"),
        ("challenge.cancelled", COUNTER_EMAIL, "EMAIL"),
        ("challenge.cancelled", COUNTER_EMAIL, "SMS"),
        ("challenge.cancelled", CREATOR_EMAIL, "EMAIL"),
        ("challenge.cancelled", CREATOR_EMAIL, "SMS"),
        ("challenge.intent_locked", CREATOR_EMAIL, "EMAIL"),  # SOLO: the creator is the only party
        ("challenge.intent_locked", CREATOR_EMAIL, "SMS"),
        ("challenge.expired", CREATOR_EMAIL, "EMAIL"),
        ("challenge.expired", CREATOR_EMAIL, "SMS"),
    ]
    assert {row["status"] for row in await notifications(services)} == {"PENDING"}


async def test_sends_the_exact_resend_and_twilio_requests(client, services, parties, providers, httpx_mock: HTTPXMock):
    ok_responses(httpx_mock)
    challenge_id = await invite(client, parties, title='<script>alert("pwned")</script> & co')

    report = await dispatch_pending(services)

    assert report["notifications_sent"] == 2
    email_row, sms_row = await notifications(services)
    email, sms = sorted(httpx_mock.get_requests(), key=lambda request: request.url.host)
    # Resend: POST /emails, bearer key, JSON {from, to[], subject, html, text}, our Idempotency-Key.
    assert (email.method, str(email.url)) == ("POST", "https://api.resend.com/emails")
    assert email.headers["authorization"] == f"Bearer {RESEND_KEY}"
    assert email.headers["content-type"] == "application/json"
    assert email.headers["idempotency-key"] == f"notification/{email_row['id']}"
    sent = json.loads(email.content)
    assert set(sent) == {"from", "to", "subject", "html", "text"}
    assert sent["from"] == EMAIL_FROM and sent["to"] == [COUNTER_EMAIL]
    assert sent["subject"] == 'You\'re invited: <script>alert("pwned")</script> & co'
    assert "<script>" not in sent["html"]
    assert "&lt;script&gt;alert(&quot;pwned&quot;)&lt;/script&gt; &amp; co" in sent["html"]
    assert f"Challenge id: {challenge_id}" in sent["text"] and "<script>" in sent["text"]  # plain text, as typed
    # Twilio: form-encoded To/From/Body to the account's Messages.json, HTTP Basic SID:token; the invitation link.
    invite_url = (await client.get(f"/challenges/{challenge_id}/invitation", token=parties[0][1])).json()["invite_url"]
    assert (sms.method, str(sms.url)) == ("POST", TWILIO_URL)
    assert sms.headers["authorization"] == "Basic " + base64.b64encode(f"{SID}:{TWILIO_TOKEN}".encode()).decode()
    assert sms.headers["content-type"] == "application/x-www-form-urlencoded"
    form = parse_qs(sms.content.decode(), strict_parsing=True)
    assert form == {
        "To": [COUNTER_PHONE],
        "From": [FROM_NUMBER],
        "Body": ['TattleHash: You\'re invited to the challenge "<script>alert("pwned")</script> & co". ' + invite_url],
    }
    assert (email_row["status"], email_row["provider_message_id"]) == ("SENT", "49a3999c-0ce1-4ea6-ab68-afcd6dc2e794")
    assert (sms_row["status"], sms_row["provider_message_id"]) == ("SENT", "SM" + "f" * 32)
    assert email_row["attempt_count"] == sms_row["attempt_count"] == 1


async def test_links_to_the_public_proof_once_intent_is_locked(client, services, providers, make_user, httpx_mock):
    ok_responses(httpx_mock)
    _, token = await person(client, make_user, CREATOR_EMAIL, None)
    created = await client.post("/challenges", json={"mode": "SOLO", "title": "Marathon"}, token=token)
    await client.post(f"/challenges/{created.json()['id']}/confirm", token=token)

    await dispatch_pending(services)

    bodies = [json.loads(request.content) for request in httpx_mock.get_requests()]
    assert [body["subject"] for body in bodies] == ["Intent locked: Marathon", "Challenge completed: Marathon"]
    link = f"https://tattlehash.test/proof/{created.json()['id']}"
    assert all(link in body["text"] and f'href="{link}"' in body["html"] for body in bodies)


async def test_provider_not_configured_is_skipped_without_any_request(client, services, parties, httpx_mock):
    await invite(client, parties)

    report = await dispatch_pending(services)

    assert report["notifications_skipped"] == 2 and report["notifications_failed"] == 0
    email_row, sms_row = await notifications(services)
    assert (email_row["status"], email_row["error"]) == ("SKIPPED", "provider not configured (RESEND_API_KEY)")
    assert (sms_row["status"], sms_row["error"]) == ("SKIPPED", "provider not configured (TWILIO_ACCOUNT_SID)")
    assert httpx_mock.get_requests() == []


@pytest.mark.parametrize(
    ("channel", "status", "answer", "reason"),
    [
        ("EMAIL", 422, {"statusCode": 422, "name": "validation_error", "message": "Invalid `to` field."},
         "HTTP 422: Invalid `to` field."),
        ("EMAIL", 403, {"statusCode": 403, "message": "The domain is not verified"}, "HTTP 403: The domain is not verified"),
        ("SMS", 400, {"code": 21211, "message": "The 'To' number is not a valid phone number.", "status": 400},
         "HTTP 400: The 'To' number is not a valid phone number."),
        ("SMS", 401, "<html>nope</html>", "HTTP 401"),
    ],
)  # fmt: skip
async def test_provider_4xx_fails_with_the_reason(
    client, services, parties, providers, httpx_mock, clock, channel, status, answer, reason
):
    url = notify.RESEND_URL if channel == "EMAIL" else TWILIO_URL
    other = TWILIO_URL if channel == "EMAIL" else notify.RESEND_URL
    if isinstance(answer, dict):
        httpx_mock.add_response(url=url, status_code=status, json=answer)
    else:
        httpx_mock.add_response(url=url, status_code=status, text=answer)
    httpx_mock.add_response(url=other, status_code=201, json={"id": "x", "sid": "y"})
    await invite(client, parties)

    await dispatch_pending(services)

    (row,) = [row for row in await notifications(services) if row["channel"] == channel]
    assert (row["status"], row["error"], row["attempt_count"]) == ("FAILED", reason, 1)
    clock.advance(days=1)
    await dispatch_pending(services)
    assert len(httpx_mock.get_requests(url=url)) == 1  # a 4xx is final


async def test_5xx_and_timeouts_are_retried_with_the_same_idempotency_key(
    client, services, parties, providers, httpx_mock, clock
):
    httpx_mock.add_response(url=notify.RESEND_URL, status_code=500, json={"message": "Internal"})
    httpx_mock.add_exception(httpx.ReadTimeout("timed out"), url=notify.RESEND_URL)
    httpx_mock.add_response(url=notify.RESEND_URL, json={"id": "email-1"})
    httpx_mock.add_response(url=TWILIO_URL, status_code=503, headers={"retry-after": "3600"})
    httpx_mock.add_response(url=TWILIO_URL, status_code=201, json={"sid": "SM1"})
    await invite(client, parties)

    await dispatch_pending(services)
    email_row, sms_row = await notifications(services)
    assert (email_row["status"], email_row["error"]) == ("PENDING", "HTTP 500: Internal")
    assert (sms_row["status"], sms_row["error"]) == ("PENDING", "HTTP 503")
    first_email_retry = (await notifications(services))[0]["next_attempt_at"]

    clock.advance(66)  # past the ~1 minute step: the email is retried, the SMS asked for an hour
    await dispatch_pending(services)
    email_row, sms_row = await notifications(services)
    assert (email_row["status"], email_row["attempt_count"]) == ("PENDING", 2)
    assert email_row["error"] == "timeout after 10 s" and email_row["next_attempt_at"] > first_email_retry
    assert sms_row["attempt_count"] == 1
    clock.advance(3600)
    await dispatch_pending(services)

    email_row, sms_row = await notifications(services)
    assert (email_row["status"], email_row["attempt_count"], email_row["provider_message_id"]) == ("SENT", 3, "email-1")
    assert (sms_row["status"], sms_row["attempt_count"], sms_row["provider_message_id"]) == ("SENT", 2, "SM1")
    keys = {request.headers["idempotency-key"] for request in httpx_mock.get_requests(url=notify.RESEND_URL)}
    assert keys == {f"notification/{email_row['id']}"}


async def test_retries_are_bounded(client, services, parties, providers, httpx_mock, clock):
    httpx_mock.add_response(url=notify.RESEND_URL, status_code=502, is_reusable=True)
    httpx_mock.add_response(url=TWILIO_URL, status_code=201, json={"sid": "SM1"})
    await invite(client, parties)

    for _ in range(notify.MAX_ATTEMPTS + 2):
        await dispatch_pending(services)
        clock.advance(hours=3)

    email_row = (await notifications(services))[0]
    assert (email_row["status"], email_row["attempt_count"]) == ("FAILED", notify.MAX_ATTEMPTS)
    assert len(httpx_mock.get_requests(url=notify.RESEND_URL)) == notify.MAX_ATTEMPTS


async def test_phone_that_is_not_e164_fails_without_a_request(client, services, parties, providers, httpx_mock):
    (_, _), (counterparty_id, _) = parties
    httpx_mock.add_response(url=notify.RESEND_URL, json={"id": "e"})
    # Written around the API (which validates E.164); the table's CHECK lets this through.
    await services.db.prepare("UPDATE users SET phone = ? WHERE id = ?").bind("+1 (415) 555", counterparty_id).run()
    await invite(client, parties)

    await dispatch_pending(services)

    sms_row = (await notifications(services))[1]
    assert (sms_row["status"], sms_row["error"]) == ("FAILED", "phone number is not in E.164 format")
    assert httpx_mock.get_requests(url=TWILIO_URL) == []


async def test_users_without_contact_details_get_no_rows(client, services, make_user, providers):
    (_, creator_token) = await make_user(email="only-email@example.com")
    counterparty_id, _ = await make_user()  # no email, no phone
    created = await client.post("/challenges", json=gatekeeper(counterparty_id), token=creator_token)
    await client.post(f"/challenges/{created.json()['id']}/send", token=creator_token)
    await delivery.fan_out(services)
    assert await notifications(services) == []


async def test_flag_off_means_no_notifications(client, services, parties, providers, env_vars, httpx_mock):
    env_vars["FF_NOTIFICATIONS"] = "false"
    await invite(client, parties)
    await dispatch_pending(services)
    assert await notifications(services) == [] and httpx_mock.get_requests() == []


async def test_overlapping_runs_send_each_notification_once(client, services, parties, providers, httpx_mock):
    ok_responses(httpx_mock)
    for index in range(5):
        await invite(client, parties, title=f"deal {index}")
    await delivery.fan_out(services)
    services.db.latency_seconds = 0.001

    await asyncio.gather(notify.send_due(services), notify.send_due(services), notify.send_due(services))

    assert len(httpx_mock.get_requests()) == 10
    assert {row["status"] for row in await notifications(services)} == {"SENT"}


@pytest.mark.httpx_mock(should_mock=lambda request: request.url.host != "127.0.0.1")
async def test_one_event_reaches_webhook_email_and_sms(
    client, services, parties, providers, httpx_mock, receivers, env_vars
):
    env_vars["RELAY_DISPATCH_AFTER_RESPONSE"] = "true"
    ok_responses(httpx_mock)
    receiver = receivers(lambda index: Reply(200))
    (_, _), (_, counterparty_token) = parties
    await register(client, counterparty_token, receiver, event_types=["challenge.invitation_sent"])
    await invite(client, parties)

    after_response(services)
    await client.adapter.drain()

    assert [payload["type"] for payload in receiver.verified] == ["challenge.invitation_sent"]
    assert sorted(request.url.host for request in httpx_mock.get_requests()) == ["api.resend.com", "api.twilio.com"]
