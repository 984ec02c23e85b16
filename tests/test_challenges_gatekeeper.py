"""GATEKEEPER end to end on a real anvil chain with two eth-account wallets (seed phase-4 gates and flow)."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from typing import Any

import pytest
import rfc8785
from eth_account import Account
from eth_account.messages import encode_defunct

from local.anvil import AnvilNode
from tests.support.contracts import deploy, transact

ETH = 10**18
TOKENS = 100 * 10**18


def sign(message: str, key: str) -> str:
    signature = Account.sign_message(encode_defunct(text=message), private_key=key).signature.hex()
    return signature if signature.startswith("0x") else "0x" + signature


@pytest.fixture
def chain_env(env_vars: dict[str, str], chain: AnvilNode) -> dict[str, str]:
    env_vars["RPC_URL_LOCAL"] = chain.url
    env_vars["RPC_PUBLIC_FALLBACKS"] = "false"
    env_vars["RPC_TIMEOUT_SECONDS"] = "5"
    return env_vars


class Party:
    def __init__(self, user_id: str, api_key: str) -> None:
        self.user_id, self.api_key = user_id, api_key
        self.account = Account.create()

    @property
    def wallet(self) -> str:
        return self.account.address


@pytest.fixture
async def parties(chain_env, make_user) -> tuple[Party, Party]:
    creator = Party(*await make_user(email="creator@example.com"))
    counterparty = Party(*await make_user(email="counter@example.com"))
    return creator, counterparty


@pytest.fixture
def token(chain: AnvilNode) -> str:
    return deploy(chain, "TestToken").lower()


def fund(chain: AnvilNode, token: str, creator: Party, counterparty: Party, *, counter_tokens: int = TOKENS) -> None:
    chain.set_balance(creator.wallet, 2 * ETH)
    transact(chain, token, "setBalance", [counterparty.wallet, counter_tokens])


def gatekeeper_body(creator: Party, counterparty: Party, token: str) -> dict[str, Any]:
    return {
        "mode": "GATEKEEPER",
        "title": "OTC swap",
        "counterparty_user_id": counterparty.user_id,
        "gatekeeper_requirements": {
            "creator": {"wallet_address": creator.wallet, "network": "local",
                        "funds_checks": [{"asset_type": "NATIVE", "min_balance": str(ETH), "currency_symbol": "ETH"}]},
            "counterparty": {"wallet_address": counterparty.wallet, "network": "local",
                             "funds_checks": [{"asset_type": "ERC20", "token_address": token,
                                               "min_balance": str(TOKENS), "currency_symbol": "TEST"}]},
        },
    }  # fmt: skip


async def verify_wallet(client, party: Party) -> None:
    created = await client.post(
        "/gatekeeper/v2/wallet/challenge",
        json={"wallet_address": party.wallet, "chain_id": "eip155:31337"},
        token=party.api_key,
    )
    assert created.status == 201, created.text
    body = created.json()
    verified = await client.post(
        "/gatekeeper/v2/wallet/verify",
        token=party.api_key,
        json={"challenge_id": body["challenge_id"], "signature": sign(body["message"], party.account.key.hex())},
    )
    assert verified.status == 200, verified.text
    assert verified.json()["user_id"] == party.user_id  # linked to the bearer's user


async def created_and_accepted(client, creator: Party, counterparty: Party, token: str) -> dict[str, Any]:
    created = await client.post(
        "/challenges", json=gatekeeper_body(creator, counterparty, token), token=creator.api_key
    )
    assert created.status == 201, created.text
    challenge_id = created.json()["id"]
    assert (await client.post(f"/challenges/{challenge_id}/send", token=creator.api_key)).json()["status"] == (
        "AWAITING_COUNTERPARTY"
    )
    accepted = await client.post(f"/challenges/{challenge_id}/accept", token=counterparty.api_key)
    assert accepted.status == 200, accepted.text
    return accepted.json()


async def test_full_gatekeeper_flow(client, chain, token, parties):
    creator, counterparty = parties
    fund(chain, token, creator, counterparty)
    # 1. Creator creates the challenge (and sends the invitation).
    # 2. Counterparty accepts: the wallets are not verified yet, so it waits for the gatekeeper.
    accepted = await created_and_accepted(client, creator, counterparty, token)
    challenge_id = accepted["id"]
    assert accepted["status"] == "AWAITING_GATEKEEPER"
    assert accepted["counterparty_user_id"] == counterparty.user_id
    # 3. Both verify their wallets through the wallet endpoints.
    await verify_wallet(client, creator)
    await verify_wallet(client, counterparty)
    # 4. Both pass their funds checks (one NATIVE, one ERC-20), run server-side in one batch per network.
    verified = await client.post(f"/challenges/{challenge_id}/verify", token=creator.api_key)
    assert verified.status == 200, verified.text
    body = verified.json()
    # 5. Intent locks, with I and C committed.
    assert body["status"] == "INTENT_LOCKED" and body["intent_locked_at"]
    assert [check["status"] for check in body["requirements"]["creator"]["funds_checks"]] == ["PASSED"]
    assert [check["status"] for check in body["requirements"]["counterparty"]["funds_checks"]] == ["PASSED"]
    assert body["requirements"]["creator"]["wallet_status"] == "VERIFIED"
    assert len(body["initiator_hash"]) == 64 and len(body["counter_hash"]) == 64
    assert str(2 * ETH) not in verified.text and str(TOKENS) not in verified.text.replace(f'"{TOKENS}"', "")
    # 6. Both confirm completion.
    first = await client.post(f"/challenges/{challenge_id}/complete", token=creator.api_key)
    assert first.json()["status"] == "INTENT_LOCKED"
    second = await client.post(f"/challenges/{challenge_id}/complete", token=counterparty.api_key)
    # 7. The final attestation exists and anyone can recompute every hash from the proof.
    done = second.json()
    assert done["status"] == "COMPLETED" and len(done["final_hash"]) == 64
    proof = (await client.get(f"/proof/{challenge_id}", headers={"accept": "application/json"})).json()
    for name, field in (("initiator", "initiator_hash"), ("counter", "counter_hash"), ("final", "final_hash")):
        entry = proof["hashes"][name]
        assert hashlib.sha256(rfc8785.dumps(entry["input"])).hexdigest() == entry["hash"] == done[field]
    assert proof["hashes"]["final"]["input"]["initiator_hash"] == done["initiator_hash"]
    assert proof["hashes"]["final"]["input"]["counter_hash"] == done["counter_hash"]
    checks = proof["hashes"]["counter"]["input"]["wallet"]["funds_checks"]
    assert checks[0]["status"] == "PASSED" and len(checks[0]["balance_commitment"]) == 64
    events = (await client.get(f"/challenges/{challenge_id}/events", token=creator.api_key)).json()
    assert [entry["to_status"] for entry in events["history"]] == [
        "DRAFT", "AWAITING_COUNTERPARTY", "AWAITING_GATEKEEPER", "INTENT_LOCKED", "COMPLETED",
    ]  # fmt: skip
    assert [event["type"] for event in events["events"]] == [
        "challenge.created", "challenge.invitation_sent", "challenge.accepted",
        "challenge.gatekeeper_verification_required", "challenge.intent_locked", "challenge.completed",
    ]  # fmt: skip


async def test_accept_locks_at_once_when_wallets_are_already_verified(client, chain, token, parties):
    creator, counterparty = parties
    fund(chain, token, creator, counterparty)
    await verify_wallet(client, creator)
    await verify_wallet(client, counterparty)
    accepted = await created_and_accepted(client, creator, counterparty, token)
    assert accepted["status"] == "INTENT_LOCKED"


async def test_funds_below_threshold_cancels_without_revealing_balances(client, chain, token, parties, db_path):
    creator, counterparty = parties
    short = TOKENS - 1
    fund(chain, token, creator, counterparty, counter_tokens=short)
    await verify_wallet(client, creator)
    await verify_wallet(client, counterparty)
    accepted = await created_and_accepted(client, creator, counterparty, token)
    assert accepted["status"] == "CANCELLED"
    assert accepted["requirements"]["creator"]["funds_checks"][0]["status"] == "PASSED"
    assert accepted["requirements"]["counterparty"]["funds_checks"][0]["status"] == "FAILED"
    events = (await client.get(f"/challenges/{accepted['id']}/events", token=creator.api_key)).json()
    failed = next(event for event in events["events"] if event["type"] == "challenge.verification_failed")
    assert {check["status"] for check in failed["data"]["checks"]} == {"PASSED", "FAILED"}
    everything = json.dumps(events) + json.dumps(accepted)
    for secret in (str(short), hex(short), str(2 * ETH), hex(2 * ETH)):
        assert secret not in everything
    with sqlite3.connect(db_path) as connection:
        stored = connection.execute("SELECT status FROM funds_attestations ORDER BY status").fetchall()
    assert stored == [("FAILED",), ("PASSED",)]


async def test_unverified_wallet_waits_then_verify_succeeds(client, chain, token, parties):
    creator, counterparty = parties
    fund(chain, token, creator, counterparty)
    await verify_wallet(client, creator)
    accepted = await created_and_accepted(client, creator, counterparty, token)
    assert accepted["status"] == "AWAITING_GATEKEEPER"
    pending = await client.post(f"/challenges/{accepted['id']}/verify", token=creator.api_key)
    assert (pending.status, pending.error_code) == (409, "E4020")
    assert pending.json()["error"]["details"]["pending"] == ["counterparty"]
    complete = await client.post(f"/challenges/{accepted['id']}/complete", token=creator.api_key)
    assert (complete.status, complete.error_code) == (409, "E4020")
    await verify_wallet(client, counterparty)
    verified = await client.post(f"/challenges/{accepted['id']}/verify", token=counterparty.api_key)
    assert verified.json()["status"] == "INTENT_LOCKED"


async def test_verification_timeout_expires(client, chain, token, parties, services, clock):
    from api.jobs import run_scheduled

    creator, counterparty = parties
    accepted = await created_and_accepted(client, creator, counterparty, token)
    assert accepted["deadlines"]["verification"] is not None
    clock.advance(seconds=3599)
    await run_scheduled(services)
    assert (await client.get(f"/challenges/{accepted['id']}", token=creator.api_key)).json()["status"] == (
        "AWAITING_GATEKEEPER"
    )
    clock.advance(seconds=1)
    await run_scheduled(services)
    assert (await client.get(f"/challenges/{accepted['id']}", token=creator.api_key)).json()["status"] == "EXPIRED"


async def test_rpc_down_leaves_status_unchanged_and_answers_502(client, chain, token, parties, chain_env):
    creator, counterparty = parties
    fund(chain, token, creator, counterparty)
    await verify_wallet(client, creator)
    chain_env["RPC_URL_LOCAL"] = "http://127.0.0.1:9"  # nothing listens there
    accepted = await created_and_accepted(client, creator, counterparty, token)
    assert accepted["status"] == "AWAITING_GATEKEEPER"
    chain_env["RPC_URL_LOCAL"] = chain.url
    await verify_wallet(client, counterparty)
    chain_env["RPC_URL_LOCAL"] = "http://127.0.0.1:9"
    response = await client.post(f"/challenges/{accepted['id']}/verify", token=creator.api_key)
    assert (response.status, response.error_code) == (502, "E2004")
    assert "127.0.0.1:9" not in response.text or "http://" not in response.text
    after = (await client.get(f"/challenges/{accepted['id']}", token=creator.api_key)).json()
    assert after["status"] == "AWAITING_GATEKEEPER"
    assert after["requirements"]["creator"]["funds_checks"][0]["status"] == "PENDING"


async def test_gatekeeper_requires_requirements_and_counterparty(client, parties, token):
    creator, counterparty = parties
    body = gatekeeper_body(creator, counterparty, token)
    missing = dict(body, gatekeeper_requirements={"creator": body["gatekeeper_requirements"]["creator"]})
    response = await client.post("/challenges", json=missing, token=creator.api_key)
    assert (response.status, response.error_code) == (400, "E3022")
    no_counterparty = {key: value for key, value in body.items() if key != "counterparty_user_id"}
    response = await client.post("/challenges", json=no_counterparty, token=creator.api_key)
    assert (response.status, response.error_code) == (400, "E3023")
    bad_network = json.loads(json.dumps(body))
    bad_network["gatekeeper_requirements"]["creator"]["network"] = "dogechain"
    response = await client.post("/challenges", json=bad_network, token=creator.api_key)
    assert (response.status, response.error_code) == (400, "E2002")
    no_token = json.loads(json.dumps(body))
    del no_token["gatekeeper_requirements"]["counterparty"]["funds_checks"][0]["token_address"]
    response = await client.post("/challenges", json=no_token, token=creator.api_key)
    assert (response.status, response.error_code) == (400, "E2003")
    for bad in ("-1", "1.5", "1e18", "0x10", str(2**256)):
        amounts = json.loads(json.dumps(body))
        amounts["gatekeeper_requirements"]["creator"]["funds_checks"][0]["min_balance"] = bad
        response = await client.post("/challenges", json=amounts, token=creator.api_key)
        assert (response.status, response.error_code) == (400, "E9004"), bad


async def test_only_the_counterparty_may_accept(client, parties, token, make_user):
    creator, counterparty = parties
    created = await client.post(
        "/challenges", json=gatekeeper_body(creator, counterparty, token), token=creator.api_key
    )
    challenge_id = created.json()["id"]
    not_sent = await client.post(f"/challenges/{challenge_id}/accept", token=counterparty.api_key)
    assert (not_sent.status, not_sent.error_code) == (409, "E3011")
    await client.post(f"/challenges/{challenge_id}/send", token=creator.api_key)
    by_creator = await client.post(f"/challenges/{challenge_id}/accept", token=creator.api_key)
    assert (by_creator.status, by_creator.error_code) == (403, "E3012")
    _, stranger = await make_user()
    assert (await client.post(f"/challenges/{challenge_id}/accept", token=stranger)).error_code == "E3010"
    await client.post(f"/challenges/{challenge_id}/accept", token=counterparty.api_key)
    again = await client.post(f"/challenges/{challenge_id}/accept", token=counterparty.api_key)
    assert (again.status, again.error_code) == (409, "E3015")


async def test_expired_invitation_is_410(client, parties, token, clock):
    creator, counterparty = parties
    body = dict(gatekeeper_body(creator, counterparty, token), expires_at="2026-11-24T12:30:00Z")
    challenge_id = (await client.post("/challenges", json=body, token=creator.api_key)).json()["id"]
    await client.post(f"/challenges/{challenge_id}/send", token=creator.api_key)
    clock.advance(minutes=31)
    response = await client.post(f"/challenges/{challenge_id}/accept", token=counterparty.api_key)
    assert (response.status, response.error_code) == (410, "E3013")


# ---- issue 12: completing after a proposal accepts that outcome only when the caller says so


async def locked(client, chain, token, parties) -> str:
    creator, counterparty = parties
    fund(chain, token, creator, counterparty)
    await verify_wallet(client, creator)
    await verify_wallet(client, counterparty)
    accepted = await created_and_accepted(client, creator, counterparty, token)
    assert accepted["status"] == "INTENT_LOCKED", accepted
    return accepted["id"]


def final_attestation(db_path, challenge_id: str) -> tuple[str, dict[str, Any]]:
    with sqlite3.connect(db_path) as connection:
        hash_, text = connection.execute(
            "SELECT hash, canonical_input FROM attestations WHERE challenge_id = ? AND kind = 'FINAL'", (challenge_id,)
        ).fetchone()
    assert hashlib.sha256(text.encode()).hexdigest() == hash_
    return hash_, json.loads(text)


async def test_complete_after_a_proposal_needs_explicit_acceptance(client, chain, token, parties, db_path):
    creator, counterparty = parties
    challenge_id = await locked(client, chain, token, parties)
    proposed = await client.post(
        f"/challenges/{challenge_id}/resolve", json={"outcome": "CREATOR_WIN"}, token=creator.api_key
    )
    assert proposed.json()["status"] == "INTENT_LOCKED", proposed.text
    # A bare `complete` no longer means "whatever was proposed": 409 E3024, for both parties.
    for party in (counterparty, creator):
        bare = await client.post(f"/challenges/{challenge_id}/complete", token=party.api_key)
        assert (bare.status, bare.error_code) == (409, "E3024"), bare.text
        assert bare.json()["error"]["details"] == {"proposed_outcome": "CREATOR_WIN", "accept_outcome": None}
    seen = (await client.get(f"/challenges/{challenge_id}", token=counterparty.api_key)).json()
    assert seen["status"] == "INTENT_LOCKED" and seen["final_hash"] is None
    assert seen["proposed_outcome"]["outcome"] == "CREATOR_WIN"
    assert seen["proposed_outcome"]["proposed_by"] == creator.user_id
    assert seen["proposed_outcome"]["dispute_window_ends_at"] is None  # nothing settles it by timeout here
    other = await client.post(
        f"/challenges/{challenge_id}/complete", json={"accept_outcome": "DRAW"}, token=counterparty.api_key
    )
    assert (other.status, other.error_code) == (409, "E3024")
    bad = await client.post(
        f"/challenges/{challenge_id}/complete", json={"accept_outcome": "EVERYONE"}, token=counterparty.api_key
    )
    assert (bad.status, bad.error_code) == (400, "E9004")
    # Accepting explicitly, both: COMPLETED, and FINAL commits to the outcome both accepted.
    first = await client.post(
        f"/challenges/{challenge_id}/complete", json={"accept_outcome": "CREATOR_WIN"}, token=creator.api_key
    )
    assert first.json()["status"] == "INTENT_LOCKED", first.text
    done = await client.post(
        f"/challenges/{challenge_id}/complete", json={"accept_outcome": "CREATOR_WIN"}, token=counterparty.api_key
    )
    body = done.json()
    assert body["status"] == "COMPLETED" and body["outcome"] == "CREATOR_WIN", done.text
    final_hash, final_input = final_attestation(db_path, challenge_id)
    assert final_hash == body["final_hash"] and final_input["outcome"] == "CREATOR_WIN"


async def test_a_confirmation_given_before_a_proposal_does_not_accept_it(client, chain, token, parties, db_path):
    creator, counterparty = parties
    challenge_id = await locked(client, chain, token, parties)
    # The counterparty confirms while nothing is proposed ...
    early = await client.post(f"/challenges/{challenge_id}/complete", token=counterparty.api_key)
    assert early.json()["status"] == "INTENT_LOCKED"
    # ... then the creator proposes and accepts its own outcome: that is not the counterparty's acceptance.
    await client.post(f"/challenges/{challenge_id}/resolve", json={"outcome": "CREATOR_WIN"}, token=creator.api_key)
    own = await client.post(
        f"/challenges/{challenge_id}/complete", json={"accept_outcome": "CREATOR_WIN"}, token=creator.api_key
    )
    assert own.json()["status"] == "INTENT_LOCKED" and own.json()["final_hash"] is None, own.text
    disputed = await client.post(
        f"/challenges/{challenge_id}/resolve", json={"outcome": "COUNTERPARTY_WIN"}, token=counterparty.api_key
    )
    assert disputed.json()["status"] == "DISPUTED"
    with sqlite3.connect(db_path) as connection:
        assert connection.execute("SELECT COUNT(*) FROM attestations WHERE kind = 'FINAL'").fetchone() == (0,)


async def test_accept_outcome_without_a_proposal_is_refused(client, chain, token, parties):
    creator, counterparty = parties
    challenge_id = await locked(client, chain, token, parties)
    response = await client.post(
        f"/challenges/{challenge_id}/complete", json={"accept_outcome": "CREATOR_WIN"}, token=creator.api_key
    )
    assert (response.status, response.error_code) == (409, "E3024")
    assert response.json()["error"]["details"] == {"proposed_outcome": None, "accept_outcome": "CREATOR_WIN"}
    # Agreeing by proposing the same outcome completes at once.
    await client.post(f"/challenges/{challenge_id}/resolve", json={"outcome": "DRAW"}, token=creator.api_key)
    agreed = await client.post(
        f"/challenges/{challenge_id}/resolve", json={"outcome": "DRAW"}, token=counterparty.api_key
    )
    assert agreed.json()["status"] == "COMPLETED" and agreed.json()["outcome"] == "DRAW"
