"""FIRE ORACLE resolution on a real anvil chain with a Chainlink-style feed whose answer the test sets."""

from __future__ import annotations

import pytest

from api.jobs import run_scheduled
from local.anvil import AnvilNode
from tests.support.contracts import deploy, transact

BOND = "100"
THRESHOLD = 2000 * 10**8  # the feed has 8 decimals


@pytest.fixture(autouse=True)
def oracle_env(env_vars, chain: AnvilNode) -> None:
    env_vars["RPC_URL_LOCAL"] = chain.url
    env_vars["RPC_PUBLIC_FALLBACKS"] = "false"
    env_vars["RPC_TIMEOUT_SECONDS"] = "5"
    env_vars["ORACLE_MAX_AGE_SECONDS"] = "3600"


@pytest.fixture
def feed(chain: AnvilNode) -> str:
    return deploy(chain, "PriceFeed").lower()


def set_answer(chain: AnvilNode, feed: str, answer: int, updated_at: int) -> None:
    transact(chain, feed, "setAnswer", [answer, updated_at])


async def oracle_challenge(client, make_user, feed: str, comparator: str = "gte") -> tuple[str, str, str, str]:
    creator_id, creator = await make_user()
    counterparty_id, counterparty = await make_user()
    body = {
        "mode": "FIRE", "title": "ETH above 2000 at noon", "counterparty_user_id": counterparty_id,
        "fire_config": {"honesty_bond_amount": BOND, "currency_code": "USDC", "resolution_strategy": "ORACLE",
                        "oracle": {"network": "local", "feed_address": feed, "comparator": comparator,
                                   "threshold": str(THRESHOLD), "resolve_after": "2026-11-24T13:00:00Z"}},
    }  # fmt: skip
    challenge_id = (await client.post("/challenges", json=body, token=creator)).json()["id"]
    await client.post(f"/challenges/{challenge_id}/send", token=creator)
    for token in (creator, counterparty):
        await client.post(f"/challenges/{challenge_id}/stake", token=token,
                          json={"type": "HONESTY_BOND", "amount": BOND, "currency_code": "USDC"})  # fmt: skip
    locked = await client.post(f"/challenges/{challenge_id}/accept", token=counterparty)
    assert locked.json()["status"] == "AWAITING_RESOLUTION", locked.text
    return challenge_id, creator, creator_id, counterparty_id


@pytest.mark.parametrize(("comparator", "answer", "winner"), [
    ("gte", THRESHOLD, "CREATOR_WIN"), ("gte", THRESHOLD - 1, "COUNTERPARTY_WIN"),
    ("lte", THRESHOLD, "CREATOR_WIN"), ("lte", THRESHOLD + 1, "COUNTERPARTY_WIN"),
])  # fmt: skip
async def test_job_reads_the_feed_after_resolve_after(client, make_user, services, clock, chain, feed,
                                                      comparator, answer, winner):  # fmt: skip
    challenge_id, creator, creator_id, counterparty_id = await oracle_challenge(client, make_user, feed, comparator)
    clock.advance(minutes=59)
    assert (await run_scheduled(services)).results["oracle_resolutions"] == {
        "resolved": 0,
        "disputed": 0,
        "retry": 0,
        "skipped": 0,
    }
    clock.advance(minutes=1)
    set_answer(chain, feed, answer, int(clock.now().timestamp()) - 60)
    report = await run_scheduled(services)
    assert report.results["oracle_resolutions"]["resolved"] == 1
    body = (await client.get(f"/challenges/{challenge_id}", token=creator)).json()
    assert body["status"] == "COMPLETED" and body["outcome"] == winner
    statuses = {stake["user_id"]: stake["status"] for stake in body["stakes"]}
    loser = counterparty_id if winner == "CREATOR_WIN" else creator_id
    assert statuses[loser] == "SLASHED"
    history = (await client.get(f"/challenges/{challenge_id}/events", token=creator)).json()["history"]
    assert history[-1]["actor"] == "system:oracle"


async def test_stale_answer_disputes(client, make_user, services, clock, chain, feed):
    challenge_id, creator, _, _ = await oracle_challenge(client, make_user, feed)
    clock.advance(hours=1)
    set_answer(chain, feed, THRESHOLD * 2, int(clock.now().timestamp()) - 3601)
    report = await run_scheduled(services)
    assert report.results["oracle_resolutions"]["disputed"] == 1
    body = (await client.get(f"/challenges/{challenge_id}", token=creator)).json()
    assert body["status"] == "DISPUTED"
    assert {stake["status"] for stake in body["stakes"]} == {"HELD"}  # no money moves until the moderator


async def test_asking_directly(client, make_user, clock, chain, feed, env_vars):
    challenge_id, creator, _, _ = await oracle_challenge(client, make_user, feed)
    early = await client.post(f"/challenges/{challenge_id}/resolve", json={}, token=creator)
    assert (early.status, early.error_code) == (409, "E3020")
    clock.advance(hours=1)
    env_vars["RPC_URL_LOCAL"] = "http://127.0.0.1:9"
    down = await client.post(f"/challenges/{challenge_id}/resolve", json={}, token=creator)
    assert (down.status, down.error_code) == (503, "E4001")
    env_vars["RPC_URL_LOCAL"] = chain.url
    set_answer(chain, feed, 1, int(clock.now().timestamp()) - 7200)
    stale = await client.post(f"/challenges/{challenge_id}/resolve", json={}, token=creator)
    assert (stale.status, stale.error_code) == (422, "E4002")
    assert (await client.get(f"/challenges/{challenge_id}", token=creator)).json()["status"] == "DISPUTED"


async def test_unreachable_feed_is_retried_next_tick(client, make_user, services, clock, chain, feed, env_vars):
    challenge_id, creator, _, _ = await oracle_challenge(client, make_user, feed)
    clock.advance(hours=1)
    env_vars["RPC_URL_LOCAL"] = "http://127.0.0.1:9"
    assert (await run_scheduled(services)).results["oracle_resolutions"]["retry"] == 1
    env_vars["RPC_URL_LOCAL"] = chain.url
    set_answer(chain, feed, THRESHOLD, int(clock.now().timestamp()))
    assert (await run_scheduled(services)).results["oracle_resolutions"]["resolved"] == 0  # not due yet
    clock.advance(seconds=60)
    assert (await run_scheduled(services)).results["oracle_resolutions"]["resolved"] == 1
    assert (await client.get(f"/challenges/{challenge_id}", token=creator)).json()["outcome"] == "CREATOR_WIN"
