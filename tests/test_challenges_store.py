"""The challenge store's reads for other packages: who a challenge's parties are, by id, in one round trip."""

from __future__ import annotations

import json
from dataclasses import fields

from challenges import store
from challenges.records import ChallengeRecord
from core.ids import new_id
from db.port import MAX_BOUND_PARAMETERS, QueryResult
from tests.support.roundtrips import count_round_trips


async def test_parties_of_a_challenge(client, services, make_user):
    creator_id, creator = await make_user(email="store-creator@example.com")
    counter_id, _ = await make_user(email="store-counter@example.com")
    config = {"honesty_bond_amount": "1000", "currency_code": "USDC", "resolution_strategy": "MODERATOR"}
    body = {"mode": "FIRE", "title": "t", "counterparty_user_id": counter_id, "fire_config": config}
    created = await client.post("/challenges", json=body, token=creator)
    assert created.status == 201, created.json()
    solo = (await client.post("/challenges", json={"mode": "SOLO", "title": "s"}, token=creator)).json()
    challenge_id = created.json()["id"]

    parties = await store.parties_of(services.db, challenge_id)
    assert parties == store.Parties(challenge_id, creator_id, counter_id)
    assert parties is not None and parties.user_ids == {creator_id, counter_id}
    alone = await store.parties_of(services.db, solo["id"])
    assert alone is not None and alone.counterparty_user_id is None and alone.user_ids == {creator_id}
    assert await store.parties_of(services.db, new_id()) is None
    assert await store.parties_of(services.db, "not-an-id") is None


async def test_parties_of_many_is_one_round_trip_past_the_parameter_limit(client, services, make_user):
    creator_id, creator = await make_user(email="store-many@example.com")
    ids = [(await client.post("/challenges", json={"mode": "SOLO", "title": "t"}, token=creator)).json()["id"]]
    ids.append((await client.post("/challenges", json={"mode": "SOLO", "title": "u"}, token=creator)).json()["id"])
    unknown = [new_id() for _ in range(MAX_BOUND_PARAMETERS + 5)]
    tally = count_round_trips(services)
    tally.reset()

    found = await store.parties_of_many(services.db, [*unknown, *ids, ids[0]])

    assert tally.round_trips == 1, tally.describe()
    assert found == {challenge_id: store.Parties(challenge_id, creator_id, None) for challenge_id in ids}
    tally.reset()
    assert await store.parties_of_many(services.db, []) == {}
    assert tally.round_trips == 0


async def test_a_whole_aggregate_is_one_statement(client, services, make_user):
    """GET, list pages and a write's read-back load the aggregate as one SELECT (children as JSON columns), not a
    statement per child table: 2 statements with the key lookup, where there were 12 (GET) and 8 (list)."""
    _, token = await make_user(email="store-one@example.com")
    tally = count_round_trips(services)
    tally.reset()
    created = await client.post("/challenges", json={"mode": "SOLO", "title": "t"}, token=token)
    assert created.status == 201
    write_batch = tally.calls[-1].sql
    assert [sql.lstrip().split()[0] for sql in write_batch].count("SELECT") == 1, tally.describe()
    for path, query in ((f"/challenges/{created.json()['id']}", None), ("/challenges", {"limit": 5})):
        tally.reset()
        answer = await client.get(path, query=query, token=token)
        assert answer.status == 200
        assert [len(call.sql) for call in tally.calls] == [2], tally.describe()


async def test_children_come_back_in_their_key_order_whatever_order_the_rows_were_written(client, services, make_user):
    """Stakes are listed by (created_at, id) although SQLite hands an aggregate function its rows in index order:
    a stake written later with an earlier time comes first."""
    creator_id, creator = await make_user(email="store-order@example.com")
    counter_id, _ = await make_user(email="store-order-2@example.com")
    config = {"honesty_bond_amount": "1000", "currency_code": "USDC", "resolution_strategy": "MODERATOR"}
    body = {"mode": "FIRE", "title": "t", "counterparty_user_id": counter_id, "fire_config": config}
    challenge_id = (await client.post("/challenges", json=body, token=creator)).json()["id"]
    insert = (
        "INSERT INTO stakes (id, challenge_id, user_id, type, amount, currency_code, status, created_at)"
        " VALUES (?, ?, ?, 'HONESTY_BOND', ?, 'USDC', 'HELD', ?)"
    )
    await services.db.batch(
        [
            services.db.prepare(insert).bind("stake-b", challenge_id, creator_id, "1000", "2026-05-02T00:00:00.000Z"),
            services.db.prepare(insert).bind("stake-a", challenge_id, counter_id, "2000", "2026-05-01T00:00:00.000Z"),
        ]
    )

    aggregate = await store.load(services.db, challenge_id)

    assert aggregate is not None
    assert [(stake.id, stake.amount) for stake in aggregate.stakes] == [("stake-a", "2000"), ("stake-b", "1000")]
    assert aggregate.fire_config is not None and aggregate.fire_config.honesty_bond_amount == "1000"
    assert aggregate.enforced_config is None and aggregate.funds_requirements == []


def test_a_d1_row_parses_with_integers_as_ints():
    """D1 returns every number as a JS number (a float in Python): INTEGER columns of the row still parse as
    ints, and the JSON children keep theirs exact."""
    challenge = {column.name: None for column in fields(ChallengeRecord)}
    challenge |= {"id": new_id(), "mode": "ENFORCED", "status": "OPEN", "version": 3.0, "title": "t"}
    challenge |= {"creator_user_id": new_id(), "created_at": "2026-01-01T00:00:00.000Z", "updated_at": "x"}
    timeouts = [challenge["id"], 3600, 7200, 2**53 + 1, None, None]
    row = challenge | {
        "agg_wallet_requirements": "[]",
        "agg_funds_requirements": "[]",
        "agg_stakes": "[]",
        "agg_slash_entries": "[]",
        "agg_fire_config": "[]",
        "agg_enforced_config": json.dumps([timeouts]),
    }

    [aggregate] = store._parse(QueryResult(results=[row]), detail=False)

    assert aggregate.challenge.version == 3 and isinstance(aggregate.challenge.version, int)
    assert aggregate.enforced_config is not None
    assert aggregate.enforced_config.dispute_timeout_seconds == 2**53 + 1
