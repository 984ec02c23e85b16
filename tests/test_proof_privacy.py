"""Issue 12 item 8: the public proof publishes no private field, yet every hash recomputes and parties can open them."""

from __future__ import annotations

import hashlib
import json

import httpx
import pytest
import rfc8785

from tests.conftest import ADMIN_TOKEN

DESCRIPTION = "Private terms: 42 km under 3 hours, loser pays the dinner"
BOND = "1000"
JSON = {"accept": "application/json"}


def sha256_jcs(value: object) -> str:
    """An independent recomputation: RFC 8785 canonical JSON, then sha256."""
    return hashlib.sha256(rfc8785.dumps(value)).hexdigest()


@pytest.fixture
async def fire(client, make_user):
    """A FIRE challenge with a description, locked by both bonds, then decided by a moderator: I, C and FINAL."""
    creator_id, creator = await make_user(email="proof-creator@example.com")
    counter_id, counter = await make_user(email="proof-counter@example.com")
    body = {
        "mode": "FIRE",
        "title": "Marathon bet",
        "description": DESCRIPTION,
        "counterparty_user_id": counter_id,
        "fire_config": {"honesty_bond_amount": BOND, "currency_code": "USDC", "resolution_strategy": "MODERATOR"},
    }
    created = await client.post("/challenges", json=body, token=creator)
    assert created.status == 201, created.text
    challenge_id = created.json()["id"]
    assert (await client.post(f"/challenges/{challenge_id}/send", token=creator)).status == 200
    stake = {"type": "HONESTY_BOND", "amount": BOND, "currency_code": "USDC"}
    assert (await client.post(f"/challenges/{challenge_id}/stake", json=stake, token=creator)).status == 200
    assert (await client.post(f"/challenges/{challenge_id}/accept", token=counter)).status == 200
    locked = await client.post(f"/challenges/{challenge_id}/stake", json=stake, token=counter)
    assert locked.json()["status"] == "AWAITING_RESOLUTION", locked.text
    decided = await client.post(
        f"/challenges/{challenge_id}/resolve", json={"outcome": "CREATOR_WIN"}, token=ADMIN_TOKEN
    )
    assert decided.status == 200 and decided.json()["status"] == "COMPLETED", decided.text
    return {
        "id": challenge_id,
        "creator": (creator_id, creator),
        "counter": (counter_id, counter),
        "final": decided.json(),
    }


async def test_proof_publishes_no_private_field(client, fire):
    """Fails before the fix: the I and C inputs carried the description and both user ids in clear."""
    creator_id, counter_id = fire["creator"][0], fire["counter"][0]
    as_json = await client.get(f"/proof/{fire['id']}", headers=JSON)
    as_html = await client.get(f"/proof/{fire['id']}", headers={"accept": "text/html"})
    assert as_json.status == 200 and as_html.status == 200
    for text in (as_json.text, as_html.text):
        for private in (DESCRIPTION, "42 km", creator_id, counter_id):
            assert private not in text
    # What a proof needs is still there.
    document = as_json.json()
    assert document["title"] == "Marathon bet" and document["mode"] == "FIRE" and document["status"] == "COMPLETED"
    assert "Marathon bet" in as_html.text and fire["final"]["final_hash"] in as_html.text


async def test_every_published_hash_recomputes_from_the_published_inputs(client, fire):
    document = (await client.get(f"/proof/{fire['id']}", headers=JSON)).json()
    hashes = document["hashes"]
    for name, column in (("initiator", "initiator_hash"), ("counter", "counter_hash"), ("final", "final_hash")):
        entry = hashes[name]
        assert sha256_jcs(entry["input"]) == entry["hash"] == fire["final"][column]
        assert rfc8785.dumps(entry["input"]).decode() == entry["canonical_json"]
    final = hashes["final"]["input"]
    assert (final["initiator_hash"], final["counter_hash"]) == (hashes["initiator"]["hash"], hashes["counter"]["hash"])
    assert final["outcome"] == document["outcome"] == "CREATOR_WIN"
    for name, side in (("initiator", "CREATOR"), ("counter", "COUNTERPARTY")):
        terms = hashes[name]["input"]
        assert terms["side"] == side and terms["title"] == "Marathon bet" and terms["mode"] == "FIRE"
        assert "description" not in terms and "user_id" not in terms
        assert sorted(terms["commitments"]) == ["description", "user_id"]
        assert all(len(value) == 64 for value in terms["commitments"].values())
    # Fresh salts per input: the same description does not give the same commitment in I and C.
    assert (
        hashes["initiator"]["input"]["commitments"]["description"]
        != (hashes["counter"]["input"]["commitments"]["description"])
    )


async def test_a_party_opens_its_commitments_and_strangers_cannot(client, fire, make_user):
    proof = (await client.get(f"/proof/{fire['id']}", headers=JSON)).json()["hashes"]
    creator_id, creator = fire["creator"]
    counter_id, counter = fire["counter"]
    url = f"/challenges/{fire['id']}/openings"
    for token in (creator, counter, ADMIN_TOKEN):
        answer = await client.get(url, token=token)
        assert answer.status == 200, answer.text
        assert answer.headers["cache-control"] == "private, no-store"
        openings = answer.json()
        for name, user_id in (("initiator", creator_id), ("counter", counter_id)):
            entry = openings[name]
            assert entry["hash"] == proof[name]["hash"]
            assert entry["canonical_json"] == proof[name]["canonical_json"]
            published = proof[name]["input"]["commitments"]
            assert entry["openings"]["description"]["value"] == DESCRIPTION
            assert entry["openings"]["user_id"]["value"] == user_id
            for field, opening in entry["openings"].items():
                # Anyone handed an opening checks it against the public proof alone.
                recomputed = sha256_jcs({"salt": opening["salt"], "value": opening["value"]})
                assert recomputed == opening["commitment"] == published[field]
                assert len(opening["salt"]) == 64
        assert openings["final"]["hash"] == proof["final"]["hash"] and openings["final"]["openings"] == {}
    _, stranger = await make_user()
    refused = await client.get(url, token=stranger)
    assert (refused.status, refused.error_code) == (404, "E3010")
    assert DESCRIPTION not in refused.text
    assert (await client.get(url)).error_code == "E9005"


async def test_a_wrong_value_does_not_open_a_commitment(client, fire):
    """The commitment binds the value: the same salt with another description or user id does not match."""
    proof = (await client.get(f"/proof/{fire['id']}", headers=JSON)).json()["hashes"]
    openings = (await client.get(f"/challenges/{fire['id']}/openings", token=fire["creator"][1])).json()
    salt = openings["initiator"]["openings"]["description"]["salt"]
    published = proof["initiator"]["input"]["commitments"]["description"]
    assert sha256_jcs({"salt": salt, "value": DESCRIPTION + " "}) != published
    user_salt = openings["initiator"]["openings"]["user_id"]["salt"]
    assert (
        sha256_jcs({"salt": user_salt, "value": fire["counter"][0]})
        != proof["initiator"]["input"]["commitments"]["user_id"]
    )


async def test_openings_before_intent_lock_are_empty(client, make_user):
    _, token = await make_user()
    created = await client.post("/challenges", json={"mode": "SOLO", "title": "Draft"}, token=token)
    answer = await client.get(f"/challenges/{created.json()['id']}/openings", token=token)
    assert answer.status == 200
    assert {name: answer.json()[name] for name in ("initiator", "counter", "final")} == {
        "initiator": None,
        "counter": None,
        "final": None,
    }


async def test_a_legacy_input_with_private_fields_is_withheld_from_the_public(client, services, fire):
    """Inputs written before the fix (v1) held the description in clear: the proof keeps the hash, not the input."""
    legacy = {
        "version": "tattlehash.proof.v1",
        "challenge_id": fire["id"],
        "description": DESCRIPTION,
        "user_id": fire["creator"][0],
    }
    text = rfc8785.dumps(legacy).decode()
    await (
        services.db.prepare(
            "UPDATE attestations SET hash = ?, canonical_input = ?, openings = NULL WHERE challenge_id = ? AND kind = 'INITIATOR'"
        )
        .bind(sha256_jcs(legacy), text, fire["id"])
        .run()
    )
    answer = await client.get(f"/proof/{fire['id']}", headers=JSON)
    assert DESCRIPTION not in answer.text and fire["creator"][0] not in answer.text
    entry = answer.json()["hashes"]["initiator"]
    assert entry["hash"] == sha256_jcs(legacy) and entry["input"] is None and entry["canonical_json"] is None
    assert entry["withheld"]
    # The parties still get the exact input behind the hash.
    openings = (await client.get(f"/challenges/{fire['id']}/openings", token=fire["counter"][1])).json()
    assert json.loads(openings["initiator"]["canonical_json"]) == legacy


def test_proof_and_openings_in_the_real_runtime(live_server) -> None:
    """The same over real HTTP, on uvicorn and on workerd (the Worker bundle: hashlib, rfc8785, no cryptography)."""
    with httpx.Client(base_url=live_server.url, timeout=30) as http:
        admin = {"authorization": f"Bearer {ADMIN_TOKEN}"}
        issued = http.post("/admin/api-keys", json={"display_name": "proof privacy"}, headers=admin).json()
        user_id, auth = issued["user_id"], {"authorization": f"Bearer {issued['api_key']}"}
        body = {"mode": "SOLO", "title": "Solo pledge", "description": DESCRIPTION}
        created = http.post("/challenges", json=body, headers=auth).json()
        confirmed = http.post(f"/challenges/{created['id']}/confirm", json={}, headers=auth)
        assert confirmed.json()["status"] == "COMPLETED", confirmed.text

        proof = http.get(f"/proof/{created['id']}", headers=JSON)
        page = http.get(f"/proof/{created['id']}")
        for text in (proof.text, page.text):
            assert DESCRIPTION not in text and user_id not in text
        hashes = proof.json()["hashes"]
        for name in ("initiator", "final"):
            assert sha256_jcs(hashes[name]["input"]) == hashes[name]["hash"]

        openings = http.get(f"/challenges/{created['id']}/openings", headers=auth)
        assert openings.status_code == 200, openings.text
        opened = openings.json()["initiator"]["openings"]
        assert (opened["description"]["value"], opened["user_id"]["value"]) == (DESCRIPTION, user_id)
        for field, opening in opened.items():
            recomputed = sha256_jcs({"salt": opening["salt"], "value": opening["value"]})
            assert recomputed == hashes["initiator"]["input"]["commitments"][field]
        stranger = http.post("/admin/api-keys", json={}, headers=admin).json()["api_key"]
        refused = http.get(f"/challenges/{created['id']}/openings", headers={"authorization": f"Bearer {stranger}"})
        assert refused.status_code == 404 and refused.json()["error"]["code"] == "E3010"
