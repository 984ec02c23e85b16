"""The outbox (SPEC §11): every event type is written by exactly the request (or job) whose change it reports.

Each step of each flow is driven through the HTTP API; the test reads the `events` rows that step added
and compares them, as (type, user_id) pairs, with what the step should emit. Payloads are checked for
balances and secrets (keys and values) along the way.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import httpx
import pytest
from eth_account import Account
from eth_account.messages import encode_defunct

from api.jobs import challenge_timeouts
from relay.outbox import EVENT_TYPES
from tests.conftest import ADMIN_TOKEN, HMAC_SECRET

RPC_URL = "https://rpc.example.test/v1/SECRETKEY"
FORBIDDEN_KEYS = ("balance", "salt", "secret", "password", "private", "session_token", "api_key", "signature")
ALLOWED_KEYS = {"signature_type"}  # says EOA or EIP1271, not a signature


class Outbox:
    """Reads the events each step adds and checks them."""

    def __init__(self, services: Any, secrets: list[str]) -> None:
        self.services = services
        self.secrets = secrets
        self.seen = 0
        self.types: set[str] = set()

    async def added(self) -> list[dict[str, Any]]:
        rows = (
            await self.services.db.prepare("SELECT rowid, * FROM events WHERE rowid > ? ORDER BY rowid")
            .bind(self.seen)
            .all()
        ).results
        if rows:
            self.seen = rows[-1]["rowid"]
        return rows

    async def expect(self, *pairs: tuple[str, str | None], challenge_id: str | None = None) -> list[dict[str, Any]]:
        rows = await self.added()
        assert Counter((row["type"], row["user_id"]) for row in rows) == Counter(pairs)
        for row in rows:
            if row["type"].startswith("challenge.") or row["type"].startswith("stake."):
                assert row["challenge_id"] == challenge_id
            payload = json.loads(row["payload"])
            self.check_clean(payload, row["type"])
            if "challenge_id" in payload:
                assert payload["challenge_id"] == row["challenge_id"]
            self.types.add(row["type"])
        return rows

    def check_clean(self, value: Any, where: str) -> None:
        if isinstance(value, dict):
            for key, item in value.items():
                lowered = key.lower()
                assert lowered in ALLOWED_KEYS or not any(word in lowered for word in FORBIDDEN_KEYS), (where, key)
                self.check_clean(item, where)
        elif isinstance(value, list):
            for item in value:
                self.check_clean(item, where)
        elif isinstance(value, str):
            assert not any(secret in value for secret in self.secrets), where
            assert not (value.startswith("0x") and len(value) >= 130), where  # no raw signatures


class Party:
    def __init__(self, user_id: str, token: str) -> None:
        self.user_id, self.token = user_id, token
        self.account = Account.create()

    @property
    def wallet(self) -> str:
        return self.account.address.lower()


@pytest.fixture
def chain_env(env_vars: dict[str, str]) -> dict[str, str]:
    env_vars["RPC_URL_ETH_MAINNET"] = RPC_URL
    env_vars["RPC_PUBLIC_FALLBACKS"] = "false"
    return env_vars


@pytest.fixture
async def people(chain_env, make_user) -> tuple[Party, Party]:
    return Party(*await make_user(email="creator@example.com")), Party(*await make_user(email="counter@example.com"))


@pytest.fixture
def outbox(services, people) -> Outbox:
    creator, counterparty = people
    return Outbox(services, [creator.token, counterparty.token, HMAC_SECRET, ADMIN_TOKEN, "SECRETKEY"])


async def act(client, challenge_id: str, action: str, party: Party | None, body: Any = None, status: int = 200):
    token = party.token if party else ADMIN_TOKEN
    response = await client.post(f"/challenges/{challenge_id}/{action}", json=body or {}, token=token)
    assert response.status == status, (action, response.text)
    return response.json()


async def create(client, party: Party, body: dict[str, Any]) -> str:
    response = await client.post("/challenges", json=body, token=party.token)
    assert response.status == 201, response.text
    return response.json()["id"]


async def verify_wallet(client, party: Party, outbox: Outbox) -> None:
    created = await client.post(
        "/gatekeeper/v2/wallet/challenge",
        json={"wallet_address": party.account.address, "chain_id": "eip155:1"},
        token=party.token,
    )
    assert created.status == 201, created.text
    body = created.json()
    signature = Account.sign_message(encode_defunct(text=body["message"]), private_key=party.account.key).signature
    signature_hex = signature.hex() if signature.hex().startswith("0x") else "0x" + signature.hex()
    verified = await client.post(
        "/gatekeeper/v2/wallet/verify",
        json={"challenge_id": body["challenge_id"], "signature": signature_hex},
        token=party.token,
    )
    assert verified.status == 200, verified.text
    outbox.secrets += [verified.json()["session_token"], signature_hex[2:]]
    (row,) = await outbox.expect(("wallet.verified", party.user_id))
    assert json.loads(row["payload"])["wallet_address"] == party.wallet


def gatekeeper(creator: Party, counterparty: Party, checks: list[dict[str, Any]] | None = None, **extra: Any):
    return {
        "mode": "GATEKEEPER",
        "title": "OTC swap",
        "counterparty_user_id": counterparty.user_id,
        "gatekeeper_requirements": {
            "creator": {"wallet_address": creator.wallet, "network": "eth-mainnet", "funds_checks": checks or []},
            "counterparty": {"wallet_address": counterparty.wallet, "network": "eth-mainnet", "funds_checks": []},
        },
        **extra,
    }


async def test_solo_events(client, people, outbox, clock):
    creator, _ = people
    cid = await create(client, creator, {"mode": "SOLO", "title": "Run"})
    await outbox.expect(("challenge.created", creator.user_id), challenge_id=cid)
    await act(client, cid, "confirm", creator)
    await outbox.expect(("challenge.intent_locked", None), ("challenge.completed", None), challenge_id=cid)

    due = await create(client, creator, {"mode": "SOLO", "title": "Later", "resolution_due_at": "2026-11-25T12:00:00Z"})
    await outbox.expect(("challenge.created", creator.user_id), challenge_id=due)
    await act(client, due, "confirm", creator)
    await outbox.expect(("challenge.intent_locked", None), challenge_id=due)
    clock.advance(days=2)
    await challenge_timeouts(outbox.services)
    await outbox.expect(("challenge.expired", None), challenge_id=due)
    await challenge_timeouts(outbox.services)  # the job is idempotent: nothing twice
    await outbox.expect()


async def test_gatekeeper_events(client, people, outbox):
    creator, counterparty = people
    await verify_wallet(client, creator, outbox)
    cid = await create(client, creator, gatekeeper(creator, counterparty))
    await outbox.expect(("challenge.created", creator.user_id), challenge_id=cid)
    await act(client, cid, "send", creator)
    await outbox.expect(("challenge.invitation_sent", counterparty.user_id), challenge_id=cid)
    accepted = await act(client, cid, "accept", counterparty)
    assert accepted["status"] == "AWAITING_GATEKEEPER"  # the counterparty's wallet is not verified yet
    await outbox.expect(
        ("challenge.accepted", creator.user_id), ("challenge.gatekeeper_verification_required", None), challenge_id=cid
    )
    await act(client, cid, "verify", counterparty, status=409)
    await outbox.expect()
    await verify_wallet(client, counterparty, outbox)
    assert (await act(client, cid, "verify", counterparty))["status"] == "INTENT_LOCKED"
    (locked,) = await outbox.expect(("challenge.intent_locked", None), challenge_id=cid)
    assert set(json.loads(locked["payload"])) >= {"initiator_hash", "counter_hash"}
    await act(client, cid, "dispute", counterparty)
    await outbox.expect(("challenge.disputed", None), challenge_id=cid)
    await act(client, cid, "resolve", None, {"outcome": "DRAW"})
    await outbox.expect(("challenge.completed", None), challenge_id=cid)


async def test_gatekeeper_cancel_and_expiry_events(client, people, outbox, clock):
    creator, counterparty = people
    cid = await create(client, creator, gatekeeper(creator, counterparty))
    await act(client, cid, "send", creator)
    await outbox.added()
    await act(client, cid, "cancel", creator)
    await outbox.expect(("challenge.cancelled", None), challenge_id=cid)

    expiring = await create(client, creator, gatekeeper(creator, counterparty, expires_at="2026-11-24T13:00:00Z"))
    await act(client, expiring, "send", creator)
    await outbox.added()
    clock.advance(hours=2)
    await challenge_timeouts(outbox.services)
    await outbox.expect(("challenge.expired", None), challenge_id=expiring)


async def test_failed_funds_check_events(client, people, outbox, httpx_mock):
    def node(request: httpx.Request) -> httpx.Response:
        calls = json.loads(request.content)
        answers = {"eth_blockNumber": "0x10", "eth_chainId": "0x1", "eth_getBalance": "0x0"}

        def answer(call: dict[str, Any]) -> dict[str, Any]:
            return {"jsonrpc": "2.0", "id": call["id"], "result": answers[call["method"]]}

        return httpx.Response(200, json=[answer(c) for c in calls] if isinstance(calls, list) else answer(calls))

    httpx_mock.add_callback(node, url=RPC_URL, is_reusable=True)
    creator, counterparty = people
    await verify_wallet(client, creator, outbox)
    await verify_wallet(client, counterparty, outbox)
    checks = [{"asset_type": "NATIVE", "min_balance": "1000000000000000000", "currency_symbol": "ETH"}]
    cid = await create(client, creator, gatekeeper(creator, counterparty, checks))
    await act(client, cid, "send", creator)
    await outbox.added()

    assert (await act(client, cid, "accept", counterparty))["status"] == "CANCELLED"  # verification runs on accept

    rows = await outbox.expect(
        ("challenge.accepted", creator.user_id),
        ("challenge.gatekeeper_verification_required", None),
        ("challenge.verification_failed", None),
        ("challenge.cancelled", None),
        challenge_id=cid,
    )
    failed = next(json.loads(row["payload"]) for row in rows if row["type"] == "challenge.verification_failed")
    assert failed["checks"] == [{"side": "creator", "position": 0, "status": "FAILED"}]


async def test_fire_events_with_stakes(client, people, outbox):
    creator, counterparty = people
    fire = {"honesty_bond_amount": "1000", "currency_code": "USD", "resolution_strategy": "MODERATOR"}
    body = {"mode": "FIRE", "title": "Bet", "counterparty_user_id": counterparty.user_id, "fire_config": fire}
    bond = {"type": "HONESTY_BOND", "amount": "1000", "currency_code": "USD"}
    cid = await create(client, creator, body)
    await act(client, cid, "send", creator)
    await outbox.added()
    await act(client, cid, "stake", creator, bond)
    await outbox.expect(("stake.held", creator.user_id), challenge_id=cid)
    await act(client, cid, "accept", counterparty)
    await outbox.expect(("challenge.accepted", creator.user_id), challenge_id=cid)
    assert (await act(client, cid, "stake", counterparty, bond))["status"] == "AWAITING_RESOLUTION"
    await outbox.expect(("stake.held", counterparty.user_id), ("challenge.intent_locked", None), challenge_id=cid)
    await act(client, cid, "resolve", creator, {"outcome": "CREATOR_WIN"})
    # One proposal is not an outcome: it is announced to the other party.
    await outbox.expect(("challenge.outcome_proposed", counterparty.user_id), challenge_id=cid)
    await act(client, cid, "resolve", counterparty, {"outcome": "CREATOR_WIN"})
    await outbox.expect(
        ("challenge.completed", None),
        ("stake.released", creator.user_id),
        ("stake.slashed", counterparty.user_id),
        challenge_id=cid,
    )

    refunded = await create(client, creator, body)
    await act(client, refunded, "stake", creator, bond)
    await outbox.added()
    await act(client, refunded, "cancel", creator)
    await outbox.expect(("challenge.cancelled", None), ("stake.refunded", creator.user_id), challenge_id=refunded)


async def test_enforced_events(client, people, outbox):
    creator, counterparty = people
    body = {"mode": "ENFORCED", "title": "Deliver", "counterparty_user_id": counterparty.user_id, "enforced_config": {}}
    cid = await create(client, creator, body)
    await act(client, cid, "send", creator)
    await outbox.added()
    assert (await act(client, cid, "accept", counterparty))["status"] == "ACTIVE"
    await outbox.expect(
        ("challenge.accepted", creator.user_id),
        ("challenge.intent_locked", None),
        ("challenge.activated", None),
        challenge_id=cid,
    )
    await act(client, cid, "respond", creator, {"response": "done"})
    (row,) = await outbox.expect(("challenge.response_submitted", None), challenge_id=cid)
    assert json.loads(row["payload"])["responder"] == creator.user_id
    assert "done" not in row["payload"]  # the response text itself stays out of the event
    await act(client, cid, "respond", counterparty, {"response": "confirmed"})
    await outbox.expect(("challenge.response_submitted", None), challenge_id=cid)
    await act(client, cid, "dispute", creator)
    await outbox.expect(("challenge.disputed", None), challenge_id=cid)


async def test_failed_requests_write_no_events(client, people, outbox):
    creator, counterparty = people
    cid = await create(client, creator, {"mode": "SOLO", "title": "Run"})
    await outbox.added()
    await act(client, cid, "send", creator, status=409)
    await act(client, cid, "cancel", counterparty, status=404)
    bad = await client.post("/challenges", json={"mode": "SOLO", "title": ""}, token=creator.token)
    assert bad.status == 400
    await outbox.expect()


# Every type of the catalogue is covered by one of the flows above.
COVERED = {
    "challenge.created", "challenge.invitation_sent", "challenge.accepted",
    "challenge.gatekeeper_verification_required", "challenge.intent_locked", "challenge.verification_failed",
    "challenge.activated", "challenge.response_submitted", "challenge.disputed", "challenge.completed",
    "challenge.cancelled", "challenge.expired", "challenge.outcome_proposed", "stake.held", "stake.released",
    "stake.slashed", "stake.refunded", "wallet.verified",
}  # fmt: skip


def test_the_flows_cover_the_whole_catalogue():
    assert set(EVENT_TYPES) == COVERED
