"""Issue 12 items 3 and 4: a new email/phone is pending until proved with a one-time code (sent through Resend /
Twilio, asserted with pytest-httpx), only verified contacts find or notify a user, /me is rate limited, and no
answer tells whether another account holds an address."""

from __future__ import annotations

import asyncio
import base64
import json
import re
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest
from pytest_httpx import HTTPXMock

from relay import delivery, notify
from tests.conftest import ADMIN_TOKEN, BASE_VARS, HMAC_SECRET, assert_no_tracebacks
from tests.support import messaging
from tests.support.messaging import EMAIL_FROM, FROM_NUMBER, RESEND_KEY, SID, TWILIO_TOKEN, TWILIO_URL

providers = messaging.providers  # the fixture, shared with the other provider suites

VICTIM = "victim@example.com"
CODE = re.compile(r"\b(\d{6})\b")


@pytest.fixture
def outbox(providers, httpx_mock: HTTPXMock) -> HTTPXMock:
    """Both providers answer as their APIs document a success."""
    httpx_mock.add_response(
        url=notify.RESEND_URL, method="POST", json={"id": "email-1"}, is_reusable=True, is_optional=True
    )
    httpx_mock.add_response(
        url=TWILIO_URL,
        method="POST",
        status_code=201,
        json={"sid": "SM" + "a" * 32},
        is_reusable=True,
        is_optional=True,
    )
    return httpx_mock


def sent(httpx_mock: HTTPXMock) -> list[tuple[str, str]]:
    """(address, code) of every code message sent so far, in order."""
    found = []
    for request in httpx_mock.get_requests():
        if str(request.url) == notify.RESEND_URL:
            body = json.loads(request.content)
            found.append((body["to"][0], CODE.search(body["text"]).group(1)))
        else:
            form = parse_qs(request.content.decode())
            found.append((form["To"][0], CODE.search(form["Body"][0]).group(1)))
    return found


def last_code(httpx_mock: HTTPXMock, address: str) -> str:
    return [code for to, code in sent(httpx_mock) if to == address][-1]


async def admin_key_for(client, email: str) -> dict[str, Any]:
    response = await client.post("/admin/api-keys", json={"email": email}, token=ADMIN_TOKEN)
    assert response.status == 201, response.text
    return response.json()


async def claim(client, token: str, **patch: Any):
    response = await client.patch("/me", json=patch, token=token)
    assert response.status == 200, response.text
    return response.json()


async def check(client, token: str, channel: str, code: str):
    return await client.post("/me/verify", json={"channel": channel, "code": code}, token=token)


# ---- item 3: a claimed address proves nothing until its code comes back


async def test_claiming_a_victims_email_does_not_take_over_their_account(client, make_user):
    """The review's scenario: PATCH /me {email: victim}, then the operator issues the victim a key by email."""
    attacker_id, attacker_key = await make_user()

    patched = await claim(client, attacker_key, email=VICTIM)
    issued = await admin_key_for(client, VICTIM)

    assert issued["user_id"] != attacker_id
    assert patched["email"] is None and patched["pending_email"]["value"] == VICTIM
    # The victim's challenges are theirs, and the attacker does not see them.
    created = await client.post("/challenges", json={"mode": "SOLO", "title": "mine"}, token=issued["api_key"])
    assert created.json()["creator_user_id"] == issued["user_id"]
    listed = (await client.get("/challenges", token=attacker_key)).json()
    assert created.json()["id"] not in json.dumps(listed)
    # The operator's address is the victim's verified one: the same lookup finds the same user again.
    assert (await admin_key_for(client, VICTIM))["user_id"] == issued["user_id"]


async def test_a_pending_email_or_phone_is_never_notified(client, services, make_user):
    _, creator_key = await make_user(email="creator@example.com")
    counterparty_id, counterparty_key = await make_user()
    await claim(client, counterparty_key, email="claimed@example.com", phone="+14155550177")
    side = {"network": "eth-mainnet", "funds_checks": []}
    created = await client.post(
        "/challenges",
        json={
            "mode": "GATEKEEPER",
            "title": "invite",
            "counterparty_user_id": counterparty_id,
            "gatekeeper_requirements": {
                "creator": {"wallet_address": "0x" + "11" * 20, **side},
                "counterparty": {"wallet_address": "0x" + "22" * 20, **side},
            },
        },
        token=creator_key,
    )
    assert created.status == 201, created.text
    assert (await client.post(f"/challenges/{created.json()['id']}/send", token=creator_key)).status == 200

    await delivery.fan_out(services)

    rows = (await services.db.prepare("SELECT user_id, template FROM notifications").all()).results
    assert [row for row in rows if row["user_id"] == counterparty_id] == []


async def test_email_code_is_sent_through_resend_and_proves_the_address(client, services, make_user, outbox, log_sink):
    user_id, key = await make_user()

    patched = await claim(client, key, email="Me@Example.com")

    (request,) = outbox.get_requests()
    assert (request.method, str(request.url)) == ("POST", notify.RESEND_URL)
    assert request.headers["authorization"] == f"Bearer {RESEND_KEY}"
    assert request.headers["idempotency-key"].startswith("notification/")
    body = json.loads(request.content)
    assert set(body) == {"from", "to", "subject", "html", "text"}
    assert (body["from"], body["to"]) == (EMAIL_FROM, ["me@example.com"])
    code = CODE.search(body["text"]).group(1)
    assert code in body["html"] and "15 minutes" in body["text"]
    assert patched["pending_email"] == {
        "value": "me@example.com",
        "expires_at": "2026-11-24T12:15:00.000Z",
        "code_delivery": "SENT",
        "attempts_left": 5,
    }
    assert code not in json.dumps(patched)
    # Stored only as a keyed hash; the code is in no response, row or log line.
    stored = await services.db.prepare("SELECT * FROM contact_claims WHERE user_id = ?").bind(user_id).first()
    assert len(stored["code_hash"]) == 64 and code not in [str(value) for value in stored.values()]
    assert not any(code in json.dumps(record) for record in log_sink.records())

    wrong = await check(client, key, "email", f"{(int(code) + 1) % 10**6:06d}")
    assert (wrong.status, wrong.error_code) == (400, "E7001")
    assert wrong.json()["error"]["details"]["attempts_left"] == 4
    right = await check(client, key, "email", code)
    assert right.status == 200, right.text
    assert (right.json()["email"], right.json()["pending_email"]) == ("me@example.com", None)
    # Now, and only now, the address finds this user.
    assert (await admin_key_for(client, "me@example.com"))["user_id"] == user_id
    assert (await check(client, key, "email", code)).error_code == "E7003"  # used up


async def test_phone_code_is_sent_through_twilio_and_proves_the_number(client, make_user, outbox):
    _, key = await make_user()

    patched = await claim(client, key, phone="+14155550123")

    (request,) = outbox.get_requests()
    assert (request.method, str(request.url)) == ("POST", TWILIO_URL)
    assert request.headers["authorization"] == "Basic " + base64.b64encode(f"{SID}:{TWILIO_TOKEN}".encode()).decode()
    form = parse_qs(request.content.decode())
    assert (form["To"], form["From"]) == (["+14155550123"], [FROM_NUMBER])
    assert patched["phone"] is None and patched["pending_phone"]["code_delivery"] == "SENT"
    verified = await check(client, key, "phone", CODE.search(form["Body"][0]).group(1))
    assert verified.status == 200, verified.text
    assert (verified.json()["phone"], verified.json()["pending_phone"]) == ("+14155550123", None)


async def test_attempts_are_limited_even_for_the_right_code_afterwards(client, make_user, outbox):
    _, key = await make_user()
    await claim(client, key, email="me@example.com")
    code = last_code(outbox, "me@example.com")
    wrong = f"{(int(code) + 1) % 10**6:06d}"

    left = [(await check(client, key, "email", wrong)).json()["error"]["details"]["attempts_left"] for _ in range(5)]

    assert left == [4, 3, 2, 1, 0]
    spent = await check(client, key, "email", code)
    assert (spent.status, spent.error_code) == (410, "E7002")
    assert (await client.get("/me", token=key)).json()["email"] is None


async def test_parallel_guesses_cannot_exceed_the_attempt_limit(client, services, make_user, outbox):
    user_id, key = await make_user()
    await claim(client, key, email="me@example.com")
    code = last_code(outbox, "me@example.com")
    guesses = [f"{(int(code) + n) % 10**6:06d}" for n in range(1, 12)] + [code]

    answers = await asyncio.gather(*(check(client, key, "email", guess) for guess in guesses))

    # At most 5 requests were judged at all; the rest found the attempts spent.
    judged = [answer for answer in answers if answer.error_code in {"E7001", None}]
    assert 1 <= len(judged) <= 5
    assert [answer.error_code for answer in answers].count("E7002") >= len(guesses) - 5
    attempts = await services.db.prepare("SELECT attempts FROM contact_claims WHERE user_id = ?").bind(user_id).first()
    assert attempts is None or attempts["attempts"] <= 5


async def test_codes_expire_after_15_minutes(client, make_user, outbox, clock):
    _, key = await make_user()
    await claim(client, key, email="me@example.com")
    clock.advance(minutes=15)
    expired = await check(client, key, "email", last_code(outbox, "me@example.com"))
    assert (expired.status, expired.error_code) == (410, "E7002")


async def test_a_new_claim_replaces_the_previous_code(client, make_user, outbox):
    _, key = await make_user()
    await claim(client, key, email="first@example.com")
    first = last_code(outbox, "first@example.com")
    await claim(client, key, email="second@example.com")
    second = last_code(outbox, "second@example.com")
    if first != second:  # one in a million they coincide
        assert (await check(client, key, "email", first)).error_code == "E7001"
    assert (await check(client, key, "email", second)).json()["email"] == "second@example.com"


async def test_nothing_pending_and_bad_codes(client, make_user):
    _, key = await make_user()
    assert (await check(client, key, "phone", "123456")).error_code == "E7003"
    for bad in ({"channel": "email", "code": "12345"}, {"channel": "fax", "code": "123456"}, {"code": "123456"}):
        response = await client.post("/me/verify", json=bad, token=key)
        assert (response.status, response.error_code) == (400, "E9004"), bad


async def test_an_address_verified_elsewhere_is_refused_only_to_whoever_holds_its_code(client, make_user, outbox):
    owner_id, _ = await make_user(email="taken@example.com")
    _, key = await make_user()
    await claim(client, key, email="taken@example.com")
    # The code went to the address's real owner; only with it can anyone learn the address is in use.
    conflict = await check(client, key, "email", last_code(outbox, "taken@example.com"))
    assert (conflict.status, conflict.error_code) == (409, "E7004")
    assert (await client.get("/me", token=key)).json()["email"] is None
    assert (await admin_key_for(client, "taken@example.com"))["user_id"] == owner_id


async def test_removing_a_contact_drops_verified_and_pending(client, make_user, outbox):
    _, key = await make_user(email="old@example.com")
    await claim(client, key, email="new@example.com")
    cleared = await claim(client, key, email=None)
    assert (cleared["email"], cleared["pending_email"]) == (None, None)
    # Re-entering the verified address keeps it and cancels a pending change, without sending anything.
    _, other = await make_user(email="keep@example.com")
    await claim(client, other, email="change@example.com")
    kept = await claim(client, other, email="keep@example.com")
    assert (kept["email"], kept["pending_email"]) == ("keep@example.com", None)
    assert [to for to, _ in sent(outbox)] == ["new@example.com", "change@example.com"]


async def test_no_provider_means_no_code_and_says_so(client, make_user, httpx_mock):
    _, key = await make_user()
    patched = await claim(client, key, email="me@example.com")
    assert patched["pending_email"]["code_delivery"] == "UNAVAILABLE"
    assert httpx_mock.get_requests() == []


async def test_a_provider_refusal_is_reported_not_hidden(client, make_user, providers, httpx_mock):
    httpx_mock.add_response(url=notify.RESEND_URL, method="POST", status_code=422, json={"message": "invalid"})
    _, key = await make_user()
    patched = await claim(client, key, email="me@example.com")
    assert patched["pending_email"]["code_delivery"] == "FAILED"


async def test_codes_per_user_and_per_address_are_capped(client, make_user, outbox, clock):
    _, key = await make_user()
    for n in range(5):
        await claim(client, key, email=f"me{n}@example.com")
    capped = await client.patch("/me", json={"email": "me5@example.com"}, token=key)
    assert (capped.status, capped.error_code) == (429, "E9003")
    assert 1 <= int(capped.headers["retry-after"]) <= 3600
    clock.advance(hours=1)
    await claim(client, key, email="me5@example.com")

    # Many accounts asking for one address share its daily allowance.
    for _ in range(10):
        _, other = await make_user()
        await claim(client, other, email=VICTIM)
    _, late = await make_user()
    refused = await client.patch("/me", json={"email": VICTIM}, token=late)
    assert (refused.status, refused.error_code) == (429, "E9003")
    assert len([to for to, _ in sent(outbox) if to == VICTIM]) == 10


# ---- item 4: no enumeration through /me


@pytest.fixture
def accounts_limit(env_vars: dict[str, str]) -> None:
    env_vars["RATE_LIMIT_ACCOUNTS_PER_MINUTE"] = "30"


async def test_100_quick_patch_probes_are_rate_limited(accounts_limit, client, make_user, clock):
    _, prober = await make_user()
    statuses = [
        (await client.patch("/me", json={"email": f"probe{n}@example.com"}, token=prober)).status for n in range(100)
    ]
    assert statuses == [200] * 30 + [429] * 70
    limited = await client.patch("/me", json={"display_name": "x"}, token=prober)
    assert limited.error_code == "E9003" and limited.headers["x-ratelimit-limit"] == "30"
    assert 1 <= int(limited.headers["retry-after"]) <= 60
    # The whole of /me shares the caller's allowance...
    assert (await client.get("/me", token=prober)).status == 429
    assert (await check(client, prober, "email", "123456")).status == 429
    # ...which is the caller's own: another user is not affected.
    _, other = await make_user()
    assert (await client.get("/me", token=other)).status == 200
    clock.advance(60)
    assert (await client.get("/me", token=prober)).status == 200


def _comparable(response, address: str) -> tuple[int, dict[str, str], str]:
    # x-d1-bookmark is a position in the database's write log: it moves with every write, anyone's.
    varying = {"x-request-id", "x-ratelimit-remaining", "x-ratelimit-reset", "x-d1-bookmark"}
    headers = {name: value for name, value in response.headers.items() if name not in varying}
    return response.status, headers, response.text.replace(address, "<address>")


async def test_taken_and_free_addresses_get_identical_answers(client, make_user, outbox):
    await make_user(email="taken@example.com")
    _, prober = await make_user()

    taken = await client.patch("/me", json={"email": "taken@example.com"}, token=prober)
    free = await client.patch("/me", json={"email": "vacnt@example.com"}, token=prober)  # same length

    assert _comparable(taken, "taken@example.com") == _comparable(free, "vacnt@example.com")
    assert taken.status == 200
    # Both addresses got the same message: the holder of a taken one learns someone tried, nothing more.
    assert [to for to, _ in sent(outbox)] == ["taken@example.com", "vacnt@example.com"]


def test_pending_contact_flow_in_both_runtimes(live_server):
    """Migration, CSPRNG code and keyed hash as deployed: workerd (Pyodide on D1) and uvicorn."""
    with httpx.Client(base_url=live_server.url, timeout=30) as http:
        admin = {"authorization": f"Bearer {ADMIN_TOKEN}"}
        attacker = http.post("/admin/api-keys", json={}, headers=admin).json()
        bearer = {"authorization": f"Bearer {attacker['api_key']}"}
        patched = http.patch("/me", json={"email": "live-victim@example.com"}, headers=bearer)
        assert patched.status_code == 200, patched.text
        assert patched.json()["email"] is None
        assert patched.json()["pending_email"]["code_delivery"] == "UNAVAILABLE"
        guessed = http.post("/me/verify", json={"channel": "email", "code": "000000"}, headers=bearer)
        assert (guessed.status_code, guessed.json()["error"]["code"]) == (400, "E7001")  # a 1-in-10^6 guess
        issued = http.post("/admin/api-keys", json={"email": "live-victim@example.com"}, headers=admin).json()
        assert issued["user_id"] != attacker["user_id"]
        assert HMAC_SECRET not in live_server.logs()


def test_me_limit_runs_on_the_workers_binding_with_its_own_keys(workerd_pool) -> None:
    """wrangler.toml's own limits: /me borrows RATE_LIMIT_CHALLENGES (30/min/user) without sharing its count."""
    worker = workerd_pool.get(dict(BASE_VARS), rate_limits=None)
    since = len(worker.logs())
    with httpx.Client(base_url=worker.url, timeout=30) as http:
        issued = http.post("/admin/api-keys", json={}, headers={"authorization": f"Bearer {ADMIN_TOKEN}"}).json()
        bearer = {"authorization": f"Bearer {issued['api_key']}"}
        statuses = [http.get("/me", headers=bearer).status_code for _ in range(30)]
        refused = http.patch("/me", json={"email": "probe@example.com"}, headers=bearer)
        challenges = http.get("/challenges", headers=bearer)
    assert statuses == [200] * 30
    assert (refused.status_code, refused.json()["error"]["code"]) == (429, "E9003")
    assert challenges.status_code == 200  # same binding, separate count
    assert_no_tracebacks(worker, since)
