"""End-to-end flows over real HTTP, in both runtimes: the CPython dev server (uvicorn) and workerd (`wrangler dev`).

Every test drives the public API only (plus the database file where a deadline must be moved into the past),
with fresh users per test: the Worker of one configuration keeps one database for the whole session.
All tests share one configuration, so workerd starts a single Worker for the module.
"""

from __future__ import annotations

import hashlib
import sqlite3
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import rfc8785
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from local.anvil import AnvilNode
from tests.conftest import ADMIN_TOKEN, use_local_chain_only
from tests.support.contracts import deploy
from tests.test_challenges_gatekeeper import ETH, TOKENS, Party, fund, gatekeeper_body, sign
from tests.test_relay_support import Receiver

pytestmark = pytest.mark.slow

PROOF_BASE = "https://tattlehash.test/proof/"  # BASE_VARS' PUBLIC_BASE_URL


@pytest.fixture(autouse=True)
def e2e_env(env_vars: dict[str, str], anvil: AnvilNode) -> dict[str, str]:
    """One configuration for every test here (one Worker): the session chain, webhooks to 127.0.0.1, first
    attempt right after the response."""
    return use_local_chain_only(env_vars, anvil.url)


@pytest.fixture
def http(live_server: Any) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=live_server.url, timeout=30) as client:
        yield client


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


def new_user(http: httpx.Client) -> tuple[str, str]:
    """A fresh user and API key through the admin endpoint: (user_id, api_key)."""
    issued = http.post(
        "/admin/api-keys", json={"email": f"e2e-{uuid.uuid4().hex}@example.com"}, headers=bearer(ADMIN_TOKEN)
    )
    assert issued.status_code == 201, issued.text
    body = issued.json()
    assert body["api_key"].startswith("thk_")
    return body["user_id"], body["api_key"]


def post(http: httpx.Client, path: str, token: str, body: dict[str, Any] | None = None) -> httpx.Response:
    return http.post(path, json=body if body is not None else {}, headers=bearer(token))


def history_of(http: httpx.Client, challenge_id: str, token: str) -> dict[str, Any]:
    events = http.get(f"/challenges/{challenge_id}/events", headers=bearer(token))
    assert events.status_code == 200, events.text
    return events.json()


def completed_solo(http: httpx.Client, title: str = "Run a marathon") -> tuple[dict[str, Any], str]:
    _, token = new_user(http)
    created = post(http, "/challenges", token, {"mode": "SOLO", "title": title, "description": "42 km"})
    assert created.status_code == 201, created.text
    assert created.json()["status"] == "DRAFT"
    confirmed = post(http, f"/challenges/{created.json()['id']}/confirm", token)
    assert confirmed.status_code == 200, confirmed.text
    return confirmed.json(), token


def assert_recomputes(entry: dict[str, Any]) -> None:
    """A published hash equals sha256 of the RFC 8785 form of its published input (an independent JCS)."""
    canonical = rfc8785.dumps(entry["input"])
    assert canonical.decode() == entry["canonical_json"]
    assert hashlib.sha256(canonical).hexdigest() == entry["hash"]


# -- 1. SOLO -----------------------------------------------------------------------------------------------


def test_solo_confirm_completes_with_final_hash(http: httpx.Client) -> None:
    challenge, token = completed_solo(http)
    assert challenge["status"] == "COMPLETED"
    assert challenge["intent_locked_at"] and challenge["completed_at"]
    assert len(challenge["initiator_hash"]) == 64 and len(challenge["final_hash"]) == 64
    assert challenge["counter_hash"] is None
    history = history_of(http, challenge["id"], token)
    assert [(entry["from_status"], entry["to_status"]) for entry in history["history"]] == [
        (None, "DRAFT"), ("DRAFT", "INTENT_LOCKED"), ("INTENT_LOCKED", "COMPLETED"),
    ]  # fmt: skip
    assert [event["type"] for event in history["events"]] == [
        "challenge.created", "challenge.intent_locked", "challenge.completed",
    ]  # fmt: skip
    # Terminal: nothing moves it any more, and the stored challenge is what confirm answered.
    again = post(http, f"/challenges/{challenge['id']}/confirm", token)
    assert (again.status_code, again.json()["error"]["code"]) == (409, "E3014")
    stored = http.get(f"/challenges/{challenge['id']}", headers=bearer(token))
    assert stored.json()["final_hash"] == challenge["final_hash"] and stored.json()["status"] == "COMPLETED"


# -- 2. GATEKEEPER on the real chain -----------------------------------------------------------------------


def verify_wallet(http: httpx.Client, party: Party) -> None:
    created = post(
        http,
        "/gatekeeper/v2/wallet/challenge",
        party.api_key,
        {"wallet_address": party.wallet, "chain_id": "eip155:31337"},
    )
    assert created.status_code == 201, created.text
    challenge = created.json()
    signature = sign(challenge["message"], party.account.key.hex())
    verified = post(
        http,
        "/gatekeeper/v2/wallet/verify",
        party.api_key,
        {"challenge_id": challenge["challenge_id"], "signature": signature},
    )
    assert verified.status_code == 200, verified.text
    body = verified.json()
    assert body["status"] == "VERIFIED" and body["user_id"] == party.user_id
    assert body["session_token"].startswith("ths_")


def test_gatekeeper_two_wallets_on_anvil(http: httpx.Client, chain: AnvilNode) -> None:
    creator, counterparty = Party(*new_user(http)), Party(*new_user(http))
    token = deploy(chain, "TestToken").lower()
    fund(chain, token, creator, counterparty)

    created = post(http, "/challenges", creator.api_key, gatekeeper_body(creator, counterparty, token))
    assert created.status_code == 201, created.text
    challenge_id = created.json()["id"]
    sent = post(http, f"/challenges/{challenge_id}/send", creator.api_key)
    assert sent.json()["status"] == "AWAITING_COUNTERPARTY"
    accepted = post(http, f"/challenges/{challenge_id}/accept", counterparty.api_key)
    assert accepted.status_code == 200, accepted.text
    assert accepted.json()["status"] == "AWAITING_GATEKEEPER"  # no wallet verified yet
    pending = post(http, f"/challenges/{challenge_id}/complete", creator.api_key)
    assert (pending.status_code, pending.json()["error"]["code"]) == (409, "E4020")

    verify_wallet(http, creator)
    verify_wallet(http, counterparty)
    # The funds checks run now, server-side, against anvil (in workerd through the runtime's fetch).
    verified = post(http, f"/challenges/{challenge_id}/verify", counterparty.api_key)
    assert verified.status_code == 200, verified.text
    body = verified.json()
    assert body["status"] == "INTENT_LOCKED" and body["intent_locked_at"]
    for side in ("creator", "counterparty"):
        assert body["requirements"][side]["wallet_status"] == "VERIFIED"
        assert [check["status"] for check in body["requirements"][side]["funds_checks"]] == ["PASSED"]
    assert len(body["initiator_hash"]) == 64 and len(body["counter_hash"]) == 64
    assert str(2 * ETH) not in verified.text and hex(2 * ETH) not in verified.text  # never the balance

    first = post(http, f"/challenges/{challenge_id}/complete", creator.api_key)
    assert first.status_code == 200 and first.json()["status"] == "INTENT_LOCKED"
    done = post(http, f"/challenges/{challenge_id}/complete", counterparty.api_key)
    assert done.status_code == 200, done.text
    final = done.json()
    assert final["status"] == "COMPLETED" and len(final["final_hash"]) == 64

    proof = http.get(f"/proof/{challenge_id}", headers={"accept": "application/json"}).json()
    for name, field in (("initiator", "initiator_hash"), ("counter", "counter_hash"), ("final", "final_hash")):
        assert_recomputes(proof["hashes"][name])
        assert proof["hashes"][name]["hash"] == final[field]
    counter_checks = proof["hashes"]["counter"]["input"]["wallet"]["funds_checks"]
    assert counter_checks[0]["status"] == "PASSED" and counter_checks[0]["min_balance"] == str(TOKENS)
    events = history_of(http, challenge_id, creator.api_key)
    assert [entry["to_status"] for entry in events["history"]] == [
        "DRAFT", "AWAITING_COUNTERPARTY", "AWAITING_GATEKEEPER", "INTENT_LOCKED", "COMPLETED",
    ]  # fmt: skip


# -- 3. FIRE with a moderator ------------------------------------------------------------------------------


def test_fire_dispute_resolved_by_moderator_settles_exactly(http: httpx.Client, live_server: Any) -> None:
    bond = "999"
    creator_id, creator = new_user(http)
    counterparty_id, counterparty = new_user(http)
    created = post(http, "/challenges", creator, {
        "mode": "FIRE", "title": "Bet", "counterparty_user_id": counterparty_id,
        "fire_config": {"honesty_bond_amount": bond, "currency_code": "USDC", "resolution_strategy": "MODERATOR"},
    })  # fmt: skip
    assert created.status_code == 201, created.text
    challenge_id = created.json()["id"]
    assert post(http, f"/challenges/{challenge_id}/send", creator).json()["status"] == "AWAITING_COUNTERPARTY"
    bond_body = {"type": "HONESTY_BOND", "amount": bond, "currency_code": "USDC"}
    short = post(http, f"/challenges/{challenge_id}/stake", creator, dict(bond_body, amount="998"))
    assert (short.status_code, short.json()["error"]["code"]) == (402, "E5012")
    held = post(http, f"/challenges/{challenge_id}/stake", creator, bond_body)
    assert held.status_code == 200 and [s["status"] for s in held.json()["stakes"]] == ["HELD"]
    assert post(http, f"/challenges/{challenge_id}/accept", counterparty).status_code == 200
    locked = post(http, f"/challenges/{challenge_id}/stake", counterparty, bond_body)
    assert locked.json()["status"] == "AWAITING_RESOLUTION", locked.text

    proposed = post(http, f"/challenges/{challenge_id}/resolve", creator, {"outcome": "CREATOR_WIN"})
    assert proposed.json()["status"] == "AWAITING_RESOLUTION"
    disputed = post(http, f"/challenges/{challenge_id}/resolve", counterparty, {"outcome": "COUNTERPARTY_WIN"})
    assert disputed.json()["status"] == "DISPUTED" and disputed.json()["settlement"] is None
    by_party = post(http, f"/challenges/{challenge_id}/resolve", creator, {"outcome": "CREATOR_WIN"})
    assert (by_party.status_code, by_party.json()["error"]["code"]) == (403, "E9007")

    decided = post(http, f"/challenges/{challenge_id}/resolve", ADMIN_TOKEN, {"outcome": "COUNTERPARTY_WIN"})
    assert decided.status_code == 200, decided.text
    body = decided.json()
    assert body["status"] == "COMPLETED" and body["outcome"] == "COUNTERPARTY_WIN"
    assert {(s["user_id"], s["amount"], s["status"]) for s in body["stakes"]} == {
        (creator_id, bond, "SLASHED"), (counterparty_id, bond, "RELEASED"),
    }  # fmt: skip
    # 50 % / 10 % / 30 % / 10 % of 999 in integers, the remainder to the treasury.
    assert body["settlement"] == {"winner": "499", "treasury": "102", "burn": "299", "provers": "99"}
    again = post(http, f"/challenges/{challenge_id}/resolve", ADMIN_TOKEN, {"outcome": "DRAW"})
    assert (again.status_code, again.json()["error"]["code"]) == (409, "E3020")

    with sqlite3.connect(live_server.database_path) as database:
        ledger = database.execute(
            "SELECT s.user_id, l.entry_type, l.amount FROM ledger_entries l JOIN stakes s ON s.id = l.stake_id"
            " WHERE l.challenge_id = ?",
            (challenge_id,),
        ).fetchall()
    assert sorted(ledger) == sorted([
        (creator_id, "HOLD", bond), (creator_id, "SLASH_WINNER", "499"), (creator_id, "SLASH_TREASURY", "102"),
        (creator_id, "SLASH_BURN", "299"), (creator_id, "SLASH_PROVERS", "99"),
        (counterparty_id, "HOLD", bond), (counterparty_id, "RELEASE", bond),
    ])  # fmt: skip
    types = [event["type"] for event in history_of(http, challenge_id, creator)["events"]]
    assert types.count("stake.held") == 2 and types.count("stake.slashed") == 1 and types.count("stake.released") == 1
    assert "challenge.disputed" in types and types[-1] in {"challenge.completed", "stake.released", "stake.slashed"}


# -- 4. Webhook, first attempt after the response ----------------------------------------------------------


def test_webhook_first_attempt_after_response_verifies(http: httpx.Client) -> None:
    receiver = Receiver()
    try:
        _, token = new_user(http)
        registered = post(http, "/webhooks", token, {"url": receiver.url})
        assert registered.status_code == 201, registered.text
        endpoint = registered.json()
        assert endpoint["secret"].startswith("whsec_")
        receiver.secret = endpoint["secret"]
        created = post(http, "/challenges", token, {"mode": "SOLO", "title": "hooked"})
        assert created.status_code == 201
        challenge_id = created.json()["id"]

        deadline = time.monotonic() + 10  # no cron is fired: only the attempt the response started can deliver
        while not receiver.received and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(receiver.received) == 1, "the first attempt did not arrive within 10 s"
        record = receiver.received[0]
        assert record.error is None, record.error  # the receiver's standardwebhooks check passed
        assert record.payload["type"] == "challenge.created"
        assert record.payload["data"] == {"challenge_id": challenge_id, "mode": "SOLO", "status": "DRAFT"}
        assert record.headers["webhook-signature"].startswith("v1,")
        assert Webhook(endpoint["secret"]).verify(record.body, record.headers) == record.payload
        with pytest.raises(WebhookVerificationError):
            Webhook("whsec_" + "A" * 32).verify(record.body, record.headers)
        with pytest.raises(WebhookVerificationError):
            Webhook(endpoint["secret"]).verify(record.body.replace(b"SOLO", b"FIRE"), record.headers)

        # The delivery is recorded as delivered by its first attempt (the record lands just after the reply).
        delivery: dict[str, Any] = {}
        while time.monotonic() < deadline + 5:
            listed = http.get(f"/webhooks/{endpoint['id']}/deliveries", headers=bearer(token))
            assert listed.status_code == 200, listed.text
            delivery = listed.json()["items"][0]
            if delivery["status"] != "PENDING":
                break
            time.sleep(0.05)
        assert (delivery["status"], delivery["attempt_count"], delivery["last_status_code"]) == ("DELIVERED", 1, 200)
        assert delivery["webhook_id"] == record.headers["webhook-id"]
        assert [attempt["status_code"] for attempt in delivery["attempts"]] == [200]
        time.sleep(0.3)
        assert len(receiver.received) == 1  # sent once
    finally:
        receiver.stop()


# -- 5. Cron moves a challenge whose deadline passed --------------------------------------------------------


def test_cron_expires_a_challenge_past_its_deadline(http: httpx.Client, live_server: Any) -> None:
    _, token = new_user(http)
    due = (datetime.now(UTC) + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    created = post(http, "/challenges", token, {"mode": "SOLO", "title": "due tomorrow", "resolution_due_at": due})
    assert created.status_code == 201, created.text
    challenge_id = created.json()["id"]
    confirmed = post(http, f"/challenges/{challenge_id}/confirm", token).json()
    assert confirmed["status"] == "AWAITING_RESOLUTION"

    # Not due yet: a run leaves it alone.
    assert live_server.fire_cron() == []
    assert http.get(f"/challenges/{challenge_id}", headers=bearer(token)).json()["status"] == "AWAITING_RESOLUTION"

    past = "2020-01-01T00:00:00.000Z"
    with sqlite3.connect(live_server.database_path, timeout=10) as database:
        changed = database.execute(
            "UPDATE challenges SET resolution_due_at = ?, next_deadline_at = ? WHERE id = ?", (past, past, challenge_id)
        ).rowcount
    assert changed == 1

    assert live_server.fire_cron() == []
    body = http.get(f"/challenges/{challenge_id}", headers=bearer(token)).json()
    assert body["status"] == "EXPIRED" and body["final_hash"] is None
    events = history_of(http, challenge_id, token)
    last = events["history"][-1]
    assert (last["from_status"], last["to_status"], last["actor"]) == (
        "AWAITING_RESOLUTION",
        "EXPIRED",
        "system:timeout",
    )
    assert events["events"][-1]["type"] == "challenge.expired"
    # Idempotent: another run changes nothing.
    assert live_server.fire_cron() == []
    assert len(history_of(http, challenge_id, token)["history"]) == len(events["history"])


# -- 6. The public proof -----------------------------------------------------------------------------------


def test_proof_html_and_json(http: httpx.Client) -> None:
    challenge, _ = completed_solo(http, title="Proof <b>bold</b>")
    challenge_id, final_hash = challenge["id"], challenge["final_hash"]

    page = http.get(f"/proof/{challenge_id}")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert final_hash in page.text and challenge["initiator_hash"] in page.text
    assert "<svg" in page.text and "&lt;b&gt;bold&lt;/b&gt;" in page.text and "<b>bold" not in page.text
    assert "42 km" not in page.text  # the description is private
    assert "default-src 'none'" in page.headers["content-security-policy"]

    answer = http.get(f"/proof/{challenge_id}", headers={"accept": "application/json"})
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("application/json")
    document = answer.json()
    assert document["proof_url"] == PROOF_BASE + challenge_id
    for name in ("initiator", "final"):
        assert_recomputes(document["hashes"][name])
    assert document["hashes"]["final"]["hash"] == final_hash
    assert document["hashes"]["initiator"]["hash"] == challenge["initiator_hash"]
    assert document["hashes"]["final"]["input"]["initiator_hash"] == challenge["initiator_hash"]

    unknown = http.get(f"/proof/{uuid.uuid4()}", headers={"accept": "application/json"})
    assert (unknown.status_code, unknown.json()["error"]["code"]) == (404, "E3010")
