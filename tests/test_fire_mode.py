"""FIRE mode through the HTTP API: honesty bonds from both parties, exact slashing, refunds, disputes (seed phase 5)."""

from __future__ import annotations

import sqlite3

import pytest

from api.jobs import run_scheduled
from tests.conftest import ADMIN_TOKEN

BOND = "1000"


@pytest.fixture
async def pair(make_user):
    creator = await make_user(email="fire-creator@example.com")
    counterparty = await make_user(email="fire-counter@example.com")
    return creator, counterparty


async def new_fire(client, pair, bond=BOND, strategy="MODERATOR", **extra):
    (_, creator), (counterparty_id, _) = pair
    body = {"mode": "FIRE", "title": "Bet", "counterparty_user_id": counterparty_id,
            "fire_config": {"honesty_bond_amount": bond, "currency_code": "USDC", "resolution_strategy": strategy},
            **extra}  # fmt: skip
    response = await client.post("/challenges", json=body, token=creator)
    assert response.status == 201, response.text
    challenge_id = response.json()["id"]
    assert (await client.post(f"/challenges/{challenge_id}/send", token=creator)).status == 200
    return challenge_id


async def stake(client, challenge_id, token, amount=BOND, **extra):
    body = {"type": "HONESTY_BOND", "amount": amount, "currency_code": "USDC", **extra}
    return await client.post(f"/challenges/{challenge_id}/stake", json=body, token=token)


async def locked_fire(client, pair, bond=BOND):
    (_, creator), (_, counterparty) = pair
    challenge_id = await new_fire(client, pair, bond)
    assert (await stake(client, challenge_id, creator, bond)).status == 200
    assert (await client.post(f"/challenges/{challenge_id}/accept", token=counterparty)).status == 200
    locked = await stake(client, challenge_id, counterparty, bond)
    assert locked.json()["status"] == "AWAITING_RESOLUTION", locked.text
    return challenge_id


def ledger(db_path, challenge_id):
    with sqlite3.connect(db_path) as connection:
        return connection.execute(
            "SELECT s.user_id, s.status, s.amount, l.entry_type, l.account, l.amount FROM ledger_entries l"
            " JOIN stakes s ON s.id = l.stake_id WHERE l.challenge_id = ? ORDER BY s.user_id, l.entry_type",
            (challenge_id,),
        ).fetchall()


async def test_requires_honesty_bond_from_both_parties(client, pair):
    (_, creator), (_, counterparty) = pair
    challenge_id = await new_fire(client, pair)
    accepted = await client.post(f"/challenges/{challenge_id}/accept", token=counterparty)
    assert accepted.json()["status"] == "AWAITING_COUNTERPARTY"  # accepted, waiting for the bonds
    one = await stake(client, challenge_id, creator)
    assert one.json()["status"] == "AWAITING_COUNTERPARTY"
    assert [s["status"] for s in one.json()["stakes"]] == ["HELD"]
    both = await stake(client, challenge_id, counterparty)
    body = both.json()
    assert body["status"] == "AWAITING_RESOLUTION" and body["intent_locked_at"]
    assert len(body["initiator_hash"]) == 64 and len(body["counter_hash"]) == 64
    history = (await client.get(f"/challenges/{challenge_id}/events", token=creator)).json()["history"]
    assert [entry["to_status"] for entry in history][-2:] == ["INTENT_LOCKED", "AWAITING_RESOLUTION"]


async def test_bond_amount_rules(client, pair, make_user, db_path):
    (_, creator), (_, counterparty) = pair
    challenge_id = await new_fire(client, pair)
    low = await stake(client, challenge_id, creator, "999")
    assert (low.status, low.error_code) == (402, "E5012")
    high = await stake(client, challenge_id, creator, "1001")
    assert (high.status, high.error_code) == (400, "E4003")
    wrong_type = await client.post(f"/challenges/{challenge_id}/stake", token=creator,
                                   json={"type": "BASE", "amount": BOND, "currency_code": "USDC"})  # fmt: skip
    assert wrong_type.error_code == "E4003"
    wrong_currency = await stake(client, challenge_id, creator, currency_code="EUR")
    assert wrong_currency.error_code == "E4003"
    for bad in ("-1", "1.5", "1e3", "0x10"):
        assert (await stake(client, challenge_id, creator, bad)).error_code == "E4003", bad
    assert (await stake(client, challenge_id, creator)).status == 200
    twice = await stake(client, challenge_id, creator)
    assert (twice.status, twice.error_code) == (409, "E5011")
    _, stranger = await make_user()
    assert (await stake(client, challenge_id, stranger)).error_code == "E3010"
    admin = await stake(client, challenge_id, ADMIN_TOKEN)
    assert admin.status in {403, 401}
    await client.post(f"/challenges/{challenge_id}/accept", token=counterparty)
    await stake(client, challenge_id, counterparty)
    late = await stake(client, challenge_id, creator, payment_reference="again")
    assert (late.status, late.error_code) == (409, "E3014")
    with sqlite3.connect(db_path) as connection:
        assert connection.execute("SELECT COUNT(*) FROM stakes").fetchone()[0] == 2


async def test_bond_validation_at_creation(client, pair):
    (_, creator), (counterparty_id, _) = pair
    for bad in ("0", "-5", "1.0", "abc", str(2**256)):
        body = {
            "mode": "FIRE",
            "title": "x",
            "counterparty_user_id": counterparty_id,
            "fire_config": {"honesty_bond_amount": bad, "currency_code": "USDC", "resolution_strategy": "MODERATOR"},
        }
        response = await client.post("/challenges", json=body, token=creator)
        assert (response.status, response.error_code) == (400, "E4003"), bad
    no_config = {"mode": "FIRE", "title": "x", "counterparty_user_id": counterparty_id}
    assert (await client.post("/challenges", json=no_config, token=creator)).error_code == "E3003"


@pytest.mark.parametrize(("bond", "split"), [
    ("1000", {"winner": "500", "treasury": "100", "burn": "300", "provers": "100"}),
    ("999", {"winner": "499", "treasury": "102", "burn": "299", "provers": "99"}),
    ("1", {"winner": "0", "treasury": "1", "burn": "0", "provers": "0"}),
    (str(2**255 + 7), None),
])  # fmt: skip
async def test_slashes_loser_and_distributes_exactly(client, pair, db_path, bond, split):
    (creator_id, creator), (counterparty_id, counterparty) = pair
    challenge_id = await locked_fire(client, pair, bond)
    first = await client.post(f"/challenges/{challenge_id}/resolve", json={"outcome": "CREATOR_WIN"}, token=creator)
    assert first.json()["status"] == "AWAITING_RESOLUTION"
    done = await client.post(f"/challenges/{challenge_id}/resolve", json={"outcome": "CREATOR_WIN"}, token=counterparty)
    body = done.json()
    assert body["status"] == "COMPLETED" and body["outcome"] == "CREATOR_WIN"
    statuses = {stake["user_id"]: stake["status"] for stake in body["stakes"]}
    assert statuses == {creator_id: "RELEASED", counterparty_id: "SLASHED"}
    settlement = body["settlement"]
    assert sum(int(part) for part in settlement.values()) == int(bond)
    if split is not None:
        assert settlement == split
    rows = ledger(db_path, challenge_id)
    for user_id in (creator_id, counterparty_id):
        entries = [row for row in rows if row[0] == user_id]
        held = sum(int(row[5]) for row in entries if row[3] == "HOLD")
        ended = sum(int(row[5]) for row in entries if row[3] != "HOLD")
        assert held == ended == int(bond)
        assert all(int(row[5]) >= 0 for row in entries)
    events = (await client.get(f"/challenges/{challenge_id}/events", token=creator)).json()["events"]
    types = [event["type"] for event in events]
    assert types.count("stake.held") == 2 and "stake.released" in types and "stake.slashed" in types


@pytest.mark.parametrize("outcome", ["DRAW", "NO_CONTEST"])
async def test_refunds_on_draw_or_no_contest(client, pair, db_path, outcome):
    (_, creator), (_, counterparty) = pair
    challenge_id = await locked_fire(client, pair)
    await client.post(f"/challenges/{challenge_id}/resolve", json={"outcome": outcome}, token=creator)
    done = (
        await client.post(f"/challenges/{challenge_id}/resolve", json={"outcome": outcome}, token=counterparty)
    ).json()
    assert done["status"] == "COMPLETED"
    assert {stake["status"] for stake in done["stakes"]} == {"REFUNDED"}
    assert done["settlement"] is None
    refunds = [row for row in ledger(db_path, challenge_id) if row[3] == "REFUND"]
    assert len(refunds) == 2 and all(row[5] == BOND for row in refunds)


async def test_disagreement_disputes_and_only_the_moderator_decides(client, pair):
    (_, creator), (counterparty_id, counterparty) = pair
    challenge_id = await locked_fire(client, pair)
    await client.post(f"/challenges/{challenge_id}/resolve", json={"outcome": "CREATOR_WIN"}, token=creator)
    disputed = await client.post(f"/challenges/{challenge_id}/resolve", json={"outcome": "COUNTERPARTY_WIN"},
                                 token=counterparty)  # fmt: skip
    assert disputed.json()["status"] == "DISPUTED"
    by_party = await client.post(f"/challenges/{challenge_id}/resolve", json={"outcome": "CREATOR_WIN"}, token=creator)
    assert (by_party.status, by_party.error_code) == (403, "E9007")
    bad = await client.post(f"/challenges/{challenge_id}/resolve", json={"outcome": "BOTH"}, token=ADMIN_TOKEN)
    assert (bad.status, bad.error_code) == (400, "E3021")
    decided = await client.post(f"/challenges/{challenge_id}/resolve", json={"outcome": "COUNTERPARTY_WIN"},
                                token=ADMIN_TOKEN)  # fmt: skip
    body = decided.json()
    assert body["status"] == "COMPLETED" and body["outcome"] == "COUNTERPARTY_WIN"
    assert {s["user_id"]: s["status"] for s in body["stakes"]}[counterparty_id] == "RELEASED"
    again = await client.post(f"/challenges/{challenge_id}/resolve", json={"outcome": "DRAW"}, token=ADMIN_TOKEN)
    assert (again.status, again.error_code) == (409, "E3020")


async def test_cancel_before_lock_refunds_held_bond(client, pair):
    (_, creator), _ = pair
    challenge_id = await new_fire(client, pair)
    await stake(client, challenge_id, creator)
    cancelled = (await client.post(f"/challenges/{challenge_id}/cancel", token=creator)).json()
    assert cancelled["status"] == "CANCELLED"
    assert [s["status"] for s in cancelled["stakes"]] == ["REFUNDED"]


async def test_stake_idempotency_key(client, pair, db_path):
    (_, creator), _ = pair
    challenge_id = await new_fire(client, pair)
    headers = {"idempotency-key": "bond-1"}
    body = {"type": "HONESTY_BOND", "amount": BOND, "currency_code": "USDC"}
    first = await client.post(f"/challenges/{challenge_id}/stake", json=body, token=creator, headers=headers)
    again = await client.post(f"/challenges/{challenge_id}/stake", json=body, token=creator, headers=headers)
    assert first.status == again.status == 200 and first.json() == again.json()
    with sqlite3.connect(db_path) as connection:
        assert connection.execute("SELECT COUNT(*) FROM stakes").fetchone()[0] == 1


async def test_fire_flag_gates_creation(client, pair, env_vars):
    env_vars["FF_FIRE_MODE"] = "false"
    (_, creator), (counterparty_id, _) = pair
    body = {
        "mode": "FIRE",
        "title": "x",
        "counterparty_user_id": counterparty_id,
        "fire_config": {"honesty_bond_amount": BOND, "currency_code": "USDC", "resolution_strategy": "MODERATOR"},
    }
    response = await client.post("/challenges", json=body, token=creator)
    assert (response.status, response.error_code) == (503, "E9010")


async def test_a_proposal_is_shown_to_the_other_party_and_never_settles_alone(client, pair, services, clock):
    """Issue 12: FIRE has no dispute timeout, so one party's proposal waits for agreement or a moderator."""
    (creator_id, creator), (counterparty_id, counterparty) = pair
    challenge_id = await locked_fire(client, pair)
    await client.post(f"/challenges/{challenge_id}/resolve", json={"outcome": "CREATOR_WIN"}, token=creator)
    seen = (await client.get(f"/challenges/{challenge_id}", token=counterparty)).json()
    assert seen["proposed_outcome"]["outcome"] == "CREATOR_WIN"
    assert seen["proposed_outcome"]["proposed_by"] == creator_id
    events = (await client.get(f"/challenges/{challenge_id}/events", token=counterparty)).json()
    (announced,) = [event for event in events["events"] if event["type"] == "challenge.outcome_proposed"]
    assert announced["data"]["outcome"] == "CREATOR_WIN" and announced["data"]["proposed_by"] == creator_id
    clock.advance(days=60)
    await run_scheduled(services)
    body = (await client.get(f"/challenges/{challenge_id}", token=creator)).json()
    assert body["status"] == "AWAITING_RESOLUTION" and {s["status"] for s in body["stakes"]} == {"HELD"}
    assert counterparty_id in {s["user_id"] for s in body["stakes"]}
