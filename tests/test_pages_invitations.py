"""Invitation links (derived token, stored hashed, expiring, single purpose), the invite and connect pages as the
server renders them, the creator's copy of the link, and the counterparty's decline."""

from __future__ import annotations

import base64
import hashlib
import html
import json
import re
import sqlite3
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from challenges import invites
from core.config import Env
from pages.html import STYLE
from pages.script import WALLET_SCRIPT
from relay import notify
from relay.jobs import dispatch_pending
from tests.conftest import ADMIN_TOKEN, HMAC_SECRET
from tests.support import messaging

providers = messaging.providers  # the provider-credentials fixture
WALLET_CREATOR = "0x" + "11" * 20
WALLET_COUNTER = "0x" + "22" * 20


def gatekeeper(counterparty_id: str, title: str = "OTC <b>swap</b> & more", **extra: Any) -> dict[str, Any]:
    check = {"asset_type": "NATIVE", "min_balance": "1500000000000000000", "currency_symbol": "ETH"}
    return {
        "mode": "GATEKEEPER",
        "title": title,
        "description": "Deliver 10 widgets <i>by Friday</i>",
        "counterparty_user_id": counterparty_id,
        "gatekeeper_requirements": {
            "creator": {"wallet_address": WALLET_CREATOR, "network": "eth-mainnet", "funds_checks": [check]},
            "counterparty": {"wallet_address": WALLET_COUNTER, "network": "eth-mainnet", "funds_checks": []},
        },
        **extra,
    }


@pytest.fixture
async def people(make_user) -> dict[str, tuple[str, str]]:
    return {
        "creator": await make_user(email="creator@example.com"),
        "counterparty": await make_user(email="counter@example.com"),
        "stranger": await make_user(email="stranger@example.com"),
    }


async def sent_challenge(client, people, **extra: Any) -> str:
    created = await client.post(
        "/challenges", json=gatekeeper(people["counterparty"][0], **extra), token=people["creator"][1]
    )
    assert created.status == 201, created.text
    challenge_id = created.json()["id"]
    sent = await client.post(f"/challenges/{challenge_id}/send", token=people["creator"][1])
    assert sent.status == 200, sent.text
    return challenge_id


async def invitation(client, people, challenge_id: str) -> dict[str, Any]:
    answer = await client.get(f"/challenges/{challenge_id}/invitation", token=people["creator"][1])
    assert answer.status == 200, answer.text
    return answer.json()


def link_parts(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    return parts.path, parse_qs(parts.query)["token"][0]


def page_text(body: str) -> str:
    """What a person reads: the markup without its scripts and styles."""
    body = re.sub(r"<(script|style)[^>]*>.*?</\1>", " ", body, flags=re.S)
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", body))


def db_rows(db_path, sql: str, *params: Any) -> list[sqlite3.Row]:
    connection = sqlite3.connect(db_path)
    connection.row_factory = sqlite3.Row
    try:
        return connection.execute(sql, params).fetchall()
    finally:
        connection.close()


# ---- the token


async def test_send_stores_the_nonce_and_a_hash_never_the_token(client, people, db_path):
    challenge_id = await sent_challenge(client, people)
    link = await invitation(client, people, challenge_id)
    path, token = link_parts(link["invite_url"])
    assert link["invite_url"].startswith(f"https://tattlehash.test/invite/{challenge_id}?token=")
    assert path == f"/invite/{challenge_id}" and re.fullmatch(r"[A-Za-z0-9_-]{43}", token)

    (row,) = db_rows(db_path, "SELECT * FROM challenge_invitations WHERE challenge_id = ?", challenge_id)
    assert row["purpose"] == "COUNTERPARTY_INVITE"
    assert row["token_hash"] == hashlib.sha256(token.encode()).hexdigest()
    # The token is HMAC(k, "invite.v1:" + id + ":" + nonce) with k derived from HMAC_SECRET …
    key = __import__("hmac").new(HMAC_SECRET.encode(), b"tattlehash.invitation-key.v1", hashlib.sha256).digest()
    mac = __import__("hmac").new(key, f"invite.v1:{challenge_id}:{row['nonce']}".encode(), hashlib.sha256).digest()
    assert token == base64.urlsafe_b64encode(mac).rstrip(b"=").decode()
    # … so another secret gives another token: a copy of the database alone cannot make the link.
    assert invites.derive_token(Env({"HMAC_SECRET": "x" * 40}), challenge_id, row["nonce"]) != token
    # The token itself is nowhere in the database (not in the row, not in the invitation event).
    connection = sqlite3.connect(db_path)
    try:
        dump = "\n".join(connection.iterdump())
    finally:
        connection.close()
    assert token not in dump and row["nonce"] in dump


async def test_the_link_expires_with_the_accept_deadline(client, people, clock):
    challenge_id = await sent_challenge(client, people, expires_at="2026-11-25T12:00:00Z")
    link = await invitation(client, people, challenge_id)
    assert (link["expires_at"], link["expired"]) == ("2026-11-25T12:00:00.000Z", False)
    path, token = link_parts(link["invite_url"])
    assert (await client.get(path, query={"token": token})).status == 200

    clock.advance(days=1)
    expired = await client.get(path, query={"token": token})
    assert expired.status == 410 and expired.headers["content-type"].startswith("text/html")
    assert "This invitation has expired" in expired.text
    assert "OTC" not in expired.text  # not even the title once the link is dead
    assert (await invitation(client, people, challenge_id))["expired"] is True


async def test_without_a_deadline_the_link_still_expires_after_30_days(client, people, clock):
    challenge_id = await sent_challenge(client, people)
    link = await invitation(client, people, challenge_id)
    assert link["expires_at"] == "2026-12-24T12:00:00.000Z"  # sent at 2026-11-24T12:00:00Z + 30 days
    path, token = link_parts(link["invite_url"])
    clock.advance(days=30)
    assert (await client.get(path, query={"token": token})).status == 410


async def test_wrong_missing_and_foreign_tokens_get_one_identical_404(client, people):
    first = await sent_challenge(client, people)
    second = await sent_challenge(client, people)
    _, token = link_parts((await invitation(client, people, first))["invite_url"])
    other_token = link_parts((await invitation(client, people, second))["invite_url"])[1]
    flipped = token[:-1] + ("A" if token[-1] != "A" else "B")
    attempts = [
        (f"/invite/{first}", {"token": flipped}),  # one character off
        (f"/invite/{first}", {"token": other_token}),  # another challenge's valid token: single purpose
        (f"/invite/{first}", {}),  # none
        (f"/invite/{first}", {"token": "x" * 5000}),  # junk
        (f"/invite/{first}", {"token": "é" * 43}),  # non-ASCII
        ("/invite/2f1b6d1e-0c1a-4c56-9c5e-3a1d2b4c5d6e", {"token": token}),  # unknown challenge
        ("/invite/not-a-uuid", {"token": token}),
        (f"/invite/{first.upper()}", {"token": token}),
    ]
    answers = [await client.get(path, query=query) for path, query in attempts]
    assert {answer.status for answer in answers} == {404}
    assert len({answer.body for answer in answers}) == 1  # never says whether the challenge exists
    assert "OTC" not in answers[0].text and "does not work" in answers[0].text
    assert answers[0].headers["content-type"].startswith("text/html")
    # The token is no credential anywhere else.
    assert (await client.get(f"/challenges/{first}", token=token)).status == 401


async def test_only_the_creator_gets_the_link(client, people):
    created = await client.post("/challenges", json=gatekeeper(people["counterparty"][0]), token=people["creator"][1])
    draft = created.json()["id"]
    not_sent = await client.get(f"/challenges/{draft}/invitation", token=people["creator"][1])
    assert (not_sent.status, not_sent.error_code) == (404, "E9008")
    challenge_id = await sent_challenge(client, people)
    for who, expected in (("counterparty", (403, "E9007")), ("stranger", (404, "E3010"))):
        answer = await client.get(f"/challenges/{challenge_id}/invitation", token=people[who][1])
        assert (answer.status, answer.error_code) == expected, who
        assert "token=" not in answer.text
    admin = await client.get(f"/challenges/{challenge_id}/invitation", token=ADMIN_TOKEN)
    assert admin.status == 200 and admin.json() == await invitation(client, people, challenge_id)
    assert admin.headers["cache-control"] == "private, no-store"


# ---- the invitation page


async def test_invite_page_shows_the_terms_escaped_under_a_strict_csp(client, people):
    challenge_id = await sent_challenge(client, people, expires_at="2026-11-25T12:00:00Z")
    path, token = link_parts((await invitation(client, people, challenge_id))["invite_url"])

    page = await client.get(path, query={"token": token})

    assert page.status == 200 and page.headers["content-type"] == "text/html; charset=utf-8"
    body = page.text
    assert "OTC &lt;b&gt;swap&lt;/b&gt; &amp; more" in body and "<b>swap</b>" not in body
    assert "Deliver 10 widgets &lt;i&gt;by Friday&lt;/i&gt;" in body
    text = page_text(body)
    assert "GATEKEEPER" in text and "2026-11-25T12:00:00.000Z" in text
    assert "at least 1.5 ETH (1500000000000000000 base units)" in text
    assert WALLET_COUNTER in text and WALLET_CREATOR in text
    assert "balance" not in text.replace("never shows a balance", "")
    # Labelled controls: each button has its words, the picker its <label for>.
    for control in ('id="connect">Connect wallet<', 'id="sign">Sign the message<', 'id="accept">Accept the challenge<',
                    'id="decline" class="secondary">Decline<', '<label for="wallet-picker">'):  # fmt: skip
        assert control in body, control
    # The script's configuration names the invited wallet and the chain of its requirement.
    assert f'"wallet":"{WALLET_COUNTER}"' in body and '"chain_id":1' in body and '"can_act":true' in body
    csp = page.headers["content-security-policy"]
    digest = base64.b64encode(hashlib.sha256(WALLET_SCRIPT.encode()).digest()).decode()
    style = base64.b64encode(hashlib.sha256(STYLE.encode()).digest()).decode()
    assert csp == (
        f"default-src 'none'; script-src 'sha256-{digest}'; style-src 'sha256-{style}'; connect-src 'self'; "
        "img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    )
    assert "unsafe-inline" not in csp and not re.search(r"\son[a-z]+=", body)  # no inline event handlers
    assert f"<script>{WALLET_SCRIPT}</script>" in body and "http://" not in body and "https://" not in body
    assert page.headers["cache-control"] == "no-store" and page.headers["referrer-policy"] == "no-referrer"


async def test_a_title_cannot_break_out_of_the_script_config(client, people):
    challenge_id = await sent_challenge(client, people, title="</script><script>alert(1)</script>")
    path, token = link_parts((await invitation(client, people, challenge_id))["invite_url"])
    body = (await client.get(path, query={"token": token})).text
    assert body.count("<script") == 2  # the JSON block and the one hashed script
    assert "alert(1)</script>" not in body


async def test_an_answered_invitation_says_so_and_offers_no_controls(client, people):
    challenge_id = await sent_challenge(client, people)
    path, token = link_parts((await invitation(client, people, challenge_id))["invite_url"])
    cancelled = await client.post(f"/challenges/{challenge_id}/cancel", token=people["creator"][1])
    assert cancelled.json()["status"] == "CANCELLED"
    page = await client.get(path, query={"token": token})
    assert page.status == 200
    assert "the challenge is cancelled" in page_text(page.text)
    assert 'id="accept"' not in page.text and "<script" not in page.text
    assert "script-src 'none'" in page.headers["content-security-policy"]


# ---- decline


async def test_the_counterparty_declines_and_the_challenge_is_cancelled(client, people):
    challenge_id = await sent_challenge(client, people)
    creator, counterparty = people["creator"][1], people["counterparty"][1]
    refused = await client.post(f"/challenges/{challenge_id}/decline", token=creator)
    assert (refused.status, refused.error_code) == (403, "E3012")
    stranger = await client.post(f"/challenges/{challenge_id}/decline", token=people["stranger"][1])
    assert (stranger.status, stranger.error_code) == (404, "E3010")

    declined = await client.post(f"/challenges/{challenge_id}/decline", token=counterparty)

    assert declined.status == 200 and declined.json()["status"] == "CANCELLED"
    events = (await client.get(f"/challenges/{challenge_id}/events", token=creator)).json()
    assert events["history"][-1]["reason"] == "declined by the counterparty"
    cancelled = [event for event in events["events"] if event["type"] == "challenge.cancelled"]
    assert cancelled[0]["data"]["reason"] == "declined by the counterparty"
    again = await client.post(f"/challenges/{challenge_id}/decline", token=counterparty)
    assert (again.status, again.error_code) == (409, "E3011")


async def test_decline_after_the_accept_deadline_is_410(client, people, clock):
    challenge_id = await sent_challenge(client, people, expires_at="2026-11-24T13:00:00Z")
    clock.advance(hours=2)
    late = await client.post(f"/challenges/{challenge_id}/decline", token=people["counterparty"][1])
    assert (late.status, late.error_code) == (410, "E3013")


async def test_decline_after_accepting_is_409(client, people):
    challenge_id = await sent_challenge(client, people)
    counterparty = people["counterparty"][1]
    assert (await client.post(f"/challenges/{challenge_id}/accept", token=counterparty)).status == 200
    late = await client.post(f"/challenges/{challenge_id}/decline", token=counterparty)
    assert (late.status, late.error_code) == (409, "E3015")


# ---- the connect page


async def wallet_challenge(client, token: str | None = None) -> dict[str, Any]:
    created = await client.post(
        "/gatekeeper/v2/wallet/challenge", json={"wallet_address": WALLET_COUNTER, "chain_id": "eip155:1"}, token=token
    )
    assert created.status == 201, created.text
    return created.json()


async def test_connect_page_shows_the_exact_message_before_signing(client):
    created = await wallet_challenge(client)
    page = await client.get("/connect", query={"challenge_id": created["challenge_id"]})
    assert page.status == 200
    assert f'aria-label="The message to sign">{created["message"]}</pre>' in page.text
    assert '<section id="signing" aria-labelledby' in page.text  # visible from the start
    assert "'sha256-" in page.headers["content-security-policy"]
    fresh = await client.get("/connect")
    assert fresh.status == 200 and '"wallet_challenge":null' in fresh.text and 'id="connect"' in fresh.text


async def test_connect_page_refuses_in_plain_words(client, people, clock, services):
    unknown = await client.get("/connect", query={"challenge_id": "2f1b6d1e-0c1a-4c56-9c5e-3a1d2b4c5d6e"})
    junk = await client.get("/connect", query={"challenge_id": "<script>"})
    assert unknown.status == junk.status == 404 and unknown.body == junk.body
    owned = await wallet_challenge(client, people["creator"][1])
    mine = await client.get("/connect", query={"challenge_id": owned["challenge_id"]})
    assert mine.status == 403 and "Finish this in your app" in mine.text
    stale = await wallet_challenge(client)
    clock.advance(minutes=11)
    expired = await client.get("/connect", query={"challenge_id": stale["challenge_id"]})
    assert expired.status == 410 and "expired" in expired.text
    await (
        services.db.prepare("UPDATE wallet_challenges SET status = 'VERIFIED', verified_at = expires_at WHERE id = ?")
        .bind(stale["challenge_id"])
        .run()
    )
    used = await client.get("/connect", query={"challenge_id": stale["challenge_id"]})
    assert used.status == 409 and "already used" in used.text
    for answer in (unknown, mine, expired, used):
        assert "<script" not in answer.text and "script-src 'none'" in answer.headers["content-security-policy"]


# ---- the invitation email and SMS carry the link


async def test_the_invitation_email_and_sms_carry_the_link(client, people, services, providers, httpx_mock, make_user):
    httpx_mock.add_response(url=notify.RESEND_URL, method="POST", json={"id": "email-1"})
    httpx_mock.add_response(url=messaging.TWILIO_URL, method="POST", status_code=201, json={"sid": "SM1"})
    counterparty_id, _ = await make_user(email="invited@example.com", phone="+447700900123")
    people["counterparty"] = (counterparty_id, "")
    challenge_id = await sent_challenge(client, people)
    link = (await invitation(client, people, challenge_id))["invite_url"]

    await dispatch_pending(services)

    email = json.loads(httpx_mock.get_request(url=notify.RESEND_URL).content)
    assert email["to"] == ["invited@example.com"]
    assert f"Review and answer the invitation: {link}" in email["text"]
    assert f'<a href="{html.escape(link, quote=True)}">Review and answer the invitation</a>' in email["html"]
    sms = parse_qs(httpx_mock.get_request(url=messaging.TWILIO_URL).content.decode())["Body"][0]
    assert sms.endswith(f" {link}")
    # The link the messages carry opens the page; nothing else the relay sends carries it.
    path, token = link_parts(link)
    assert (await client.get(path, query={"token": token})).status == 200
    assert notify.render("challenge.accepted", "t", {}, challenge_id, "https://x.test", link).text.count("invite") == 0


async def test_no_link_once_it_expired(services, client, people, clock):
    challenge_id = await sent_challenge(client, people, expires_at="2026-11-24T13:00:00Z")
    assert await invites.link_for(services.db, services.env, challenge_id, clock.now()) is not None
    clock.advance(hours=2)
    assert await invites.link_for(services.db, services.env, challenge_id, clock.now()) is None
