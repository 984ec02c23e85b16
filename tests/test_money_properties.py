"""Property tests: over random bonds, outcomes and orders of events, money is conserved and stakes end once,
and no stake is slashed on an outcome the loser could not have seen."""

from __future__ import annotations

import json
import sqlite3
from datetime import timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from api.jobs import run_scheduled
from challenges.settlement import split_slash
from core.clock import format_time, parse_time
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
    stakes = _assert_conserved(db_path, challenge_id)
    assert final["status"] in {"COMPLETED", "CANCELLED", "EXPIRED"}, final["status"]
    if final["status"] == "COMPLETED" and outcome in {"CREATOR_WIN", "COUNTERPARTY_WIN"}:
        assert sorted(status for _, _, status in stakes) == ["RELEASED", "SLASHED"]
    else:
        assert {status for _, _, status in stakes} <= {"REFUNDED"}


def _assert_conserved(db_path, challenge_id):
    """Every stake was held once and ended once, in non-negative parts that sum to what was held."""
    stakes, entries = _money(db_path, challenge_id)
    for stake_id, amount, status in stakes:
        holds = [int(a) for s, kind, a in entries if s == stake_id and kind == "HOLD"]
        ends = [(kind, int(a)) for s, kind, a in entries if s == stake_id and kind != "HOLD"]
        assert holds == [int(amount)]
        assert status != "HELD", "every stake ends with the challenge"
        assert sum(part for _, part in ends) == int(amount)
        assert all(part >= 0 for _, part in ends)
        kinds = {kind for kind, _ in ends}
        assert kinds in ({"RELEASE"}, {"REFUND"}, {"SLASH_WINNER", "SLASH_TREASURY", "SLASH_BURN", "SLASH_PROVERS"})
    return stakes


# ---- issue 12: no stake is slashed on an outcome the loser could not have seen

WINDOW = 3600  # the ENFORCED dispute window of these runs, in seconds
PARTIES = ("creator", "counterparty")
STEPS = st.one_of(
    st.tuples(st.just("wait"), st.integers(min_value=0, max_value=2 * WINDOW)),
    st.tuples(st.just("propose"), st.sampled_from(PARTIES), st.sampled_from(OUTCOMES)),
    st.tuples(st.just("dispute"), st.sampled_from(PARTIES)),
)


def _seen_by_loser(db_path, challenge_id, loser, window):
    """Why the loser of a completed challenge could have seen its outcome, or None if it could not have."""
    with sqlite3.connect(db_path) as connection:
        outcome, completed_at = connection.execute(
            "SELECT outcome, completed_at FROM challenges WHERE id = ?", (challenge_id,)
        ).fetchone()
        (last_actor,) = connection.execute(
            "SELECT actor FROM challenge_status_history WHERE challenge_id = ? ORDER BY id DESC LIMIT 1",
            (challenge_id,),
        ).fetchone()
        own = connection.execute(
            "SELECT payload FROM challenge_party_actions WHERE challenge_id = ? AND user_id = ? AND action = 'RESOLVE'",
            (challenge_id, loser),
        ).fetchone()
        announcements = connection.execute(
            "SELECT user_id, payload, created_at FROM events WHERE challenge_id = ?"
            " AND type = 'challenge.outcome_proposed' ORDER BY created_at, rowid",
            (challenge_id,),
        ).fetchall()
    if last_actor == "admin":
        return "decided by the moderator"
    if own == (outcome,):
        return "the loser chose this outcome itself"
    if not announcements:
        return None
    addressed_to, payload, announced_at = announcements[-1]
    shown_for = (parse_time(completed_at) - parse_time(announced_at)).total_seconds()
    if addressed_to == loser and json.loads(payload)["outcome"] == outcome and shown_for >= window:
        return "announced to the loser a whole window before it settled"
    return None


@settings(max_examples=EXAMPLES // 2, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    mode=st.sampled_from(["ENFORCED", "FIRE"]),
    bond=st.integers(min_value=1, max_value=10**30),
    steps=st.lists(STEPS, max_size=6),
    moderator=st.sampled_from(OUTCOMES),
)
async def test_no_stake_is_slashed_on_an_outcome_the_loser_could_not_have_seen(
    client, db_path, clock, services, mode, bond, steps, moderator
):
    creator_id, creator = await _new_user(client)
    counterparty_id, counterparty = await _new_user(client)
    tokens = {"creator": creator, "counterparty": counterparty}
    body = {"mode": mode, "title": "p", "counterparty_user_id": counterparty_id}
    if mode == "FIRE":
        body["fire_config"] = {"honesty_bond_amount": str(bond), "currency_code": "WEI",
                               "resolution_strategy": "MODERATOR"}  # fmt: skip
        stake_body = {"type": "HONESTY_BOND", "amount": str(bond), "currency_code": "WEI"}
    else:
        body["enforced_config"] = {"dispute_timeout_seconds": WINDOW, "stake_amount": str(bond),
                                   "currency_code": "WEI"}  # fmt: skip
        stake_body = {"type": "BASE", "amount": str(bond), "currency_code": "WEI"}
    challenge_id = (await client.post("/challenges", json=body, token=creator)).json()["id"]
    path = f"/challenges/{challenge_id}"
    await client.post(f"{path}/send", token=creator)
    for token in (creator, counterparty):
        assert (await client.post(f"{path}/stake", json=stake_body, token=token)).status == 200
    accepted = await client.post(f"{path}/accept", token=counterparty)
    assert accepted.json()["status"] in {"ACTIVE", "AWAITING_RESOLUTION"}, accepted.text
    if mode == "ENFORCED":
        for token in (creator, counterparty):
            await client.post(f"{path}/respond", json={"response": "done"}, token=token)
    for step in steps:
        if step[0] == "wait":
            clock.advance(seconds=step[1])
            await run_scheduled(services)
        elif step[0] == "propose":
            await client.post(f"{path}/resolve", json={"outcome": step[2]}, token=tokens[step[1]])
        else:
            await client.post(f"{path}/dispute", token=tokens[step[1]])
    # Then nobody acts any more: the jobs run long after every window, and a moderator decides a dispute.
    clock.advance(seconds=10 * WINDOW)
    await run_scheduled(services)
    await run_scheduled(services)
    await client.post(f"{path}/resolve", json={"outcome": moderator}, token=ADMIN_TOKEN)
    stakes = _assert_conserved(db_path, challenge_id)
    owners = {creator_id, counterparty_id}
    with sqlite3.connect(db_path) as connection:
        slashed = connection.execute(
            "SELECT user_id FROM stakes WHERE challenge_id = ? AND status = 'SLASHED'", (challenge_id,)
        ).fetchall()
    assert len(stakes) == 2 and {user for (user,) in slashed} <= owners
    for (loser,) in slashed:
        assert _seen_by_loser(db_path, challenge_id, loser, WINDOW), f"{loser} lost on an outcome it never saw"
