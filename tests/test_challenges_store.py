"""The challenge store's reads for other packages: who a challenge's parties are, by id, in one round trip."""

from __future__ import annotations

from challenges import store
from core.ids import new_id
from db.port import MAX_BOUND_PARAMETERS
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
