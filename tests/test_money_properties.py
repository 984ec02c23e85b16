"""Property test: over random bonds, outcomes and orders of events, money is conserved and stakes end once."""

from __future__ import annotations

import sqlite3
from datetime import timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from api.jobs import run_scheduled
from challenges.settlement import split_slash
from core.clock import format_time
from tests.conftest import ADMIN_TOKEN

OUTCOMES = ("CREATOR_WIN", "COUNTERPARTY_WIN", "DRAW", "NO_CONTEST")
EXAMPLES = 200


@given(st.integers(min_value=0, max_value=2**256 - 1))
def test_split_always_sums_to_the_bond(amount):
    parts = split_slash(amount)
    assert sum(parts.values()) == amount
    assert all(part >= 0 for part in parts.values())
    assert parts["SLASH_WINNER"] == amount // 2


async def _new_user(client) -> tuple[str, str]:
    issued = (await client.post("/admin/api-keys", json={}, token=ADMIN_TOKEN)).json()
    return issued["user_id"], issued["api_key"]


def _money(db_path, challenge_id):
    with sqlite3.connect(db_path) as connection:
        stakes = connection.execute(
            "SELECT id, amount, status FROM stakes WHERE challenge_id = ?", (challenge_id,)
        ).fetchall()
        entries = connection.execute(
            "SELECT stake_id, entry_type, amount FROM ledger_entries WHERE challenge_id = ?", (challenge_id,)
        ).fetchall()
    return stakes, entries


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    bond=st.integers(min_value=1, max_value=2**256 - 1),
    order=st.permutations(["accept", "stake_creator", "stake_counter"]),
    ending=st.sampled_from(["agree", "dispute", "cancel", "expire"]),
    outcome=st.sampled_from(OUTCOMES),
    stop_after=st.integers(min_value=0, max_value=2),  # cancel and expiry happen before the lock
    replays=st.lists(st.sampled_from(["resolve", "stake", "cancel", "dispute"]), max_size=3),
)
async def test_money_is_conserved(client, db_path, clock, services, bond, order, ending, outcome, stop_after, replays):
    _, creator = await _new_user(client)
    counterparty_id, counterparty = await _new_user(client)
    body = {
        "mode": "FIRE",
        "title": "p",
        "counterparty_user_id": counterparty_id,
        "expires_at": format_time(clock.now() + timedelta(hours=1)),
        "fire_config": {"honesty_bond_amount": str(bond), "currency_code": "WEI", "resolution_strategy": "MODERATOR"},
    }
    challenge_id = (await client.post("/challenges", json=body, token=creator)).json()["id"]
    await client.post(f"/challenges/{challenge_id}/send", token=creator)
    steps = order if ending in {"agree", "dispute"} else order[:stop_after]
    stake_body = {"type": "HONESTY_BOND", "amount": str(bond), "currency_code": "WEI"}
    for step in steps:
        if step == "accept":
            response = await client.post(f"/challenges/{challenge_id}/accept", token=counterparty)
        else:
            token = creator if step == "stake_creator" else counterparty
            response = await client.post(f"/challenges/{challenge_id}/stake", json=stake_body, token=token)
        assert response.status == 200, response.text
    if ending == "agree":
        for token in (creator, counterparty):
            await client.post(f"/challenges/{challenge_id}/resolve", json={"outcome": outcome}, token=token)
    elif ending == "dispute":
        await client.post(f"/challenges/{challenge_id}/dispute", token=counterparty)
        await client.post(f"/challenges/{challenge_id}/resolve", json={"outcome": outcome}, token=ADMIN_TOKEN)
    elif ending == "cancel":
        await client.post(f"/challenges/{challenge_id}/cancel", token=creator)
    else:
        clock.advance(hours=2)
        await run_scheduled(services)
    final = (await client.get(f"/challenges/{challenge_id}", token=creator)).json()
    # Nothing done afterwards may move money again.
    for replay in replays:
        path = f"/challenges/{challenge_id}/{replay}"
        payload = {"outcome": outcome} if replay == "resolve" else stake_body if replay == "stake" else {}
        response = await client.post(path, json=payload, token=ADMIN_TOKEN if replay == "resolve" else creator)
        assert response.status >= 400
    stakes, entries = _money(db_path, challenge_id)
    assert final["status"] in {"COMPLETED", "CANCELLED", "EXPIRED"}, final["status"]
    for stake_id, amount, status in stakes:
        holds = [int(a) for s, kind, a in entries if s == stake_id and kind == "HOLD"]
        ends = [(kind, int(a)) for s, kind, a in entries if s == stake_id and kind != "HOLD"]
        assert holds == [int(amount)]
        assert status != "HELD", "every stake ends with the challenge"
        assert sum(part for _, part in ends) == int(amount)
        assert all(part >= 0 for _, part in ends)
        kinds = {kind for kind, _ in ends}
        assert kinds in ({"RELEASE"}, {"REFUND"}, {"SLASH_WINNER", "SLASH_TREASURY", "SLASH_BURN", "SLASH_PROVERS"})
    if final["status"] == "COMPLETED" and outcome in {"CREATOR_WIN", "COUNTERPARTY_WIN"}:
        assert sorted(status for _, _, status in stakes) == ["RELEASED", "SLASHED"]
    else:
        assert {status for _, _, status in stakes} <= {"REFUNDED"}
