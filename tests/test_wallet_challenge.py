"""POST /gatekeeper/v2/wallet/challenge: nonce, TTL, stored row, plain message, and every bad input's 4xx."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest

from chain.address import to_checksum_address
from core.clock import parse_time
from gatekeeper.messages import BRAND_LINE, PURPOSE
from tests.test_wallet_support import (
    CHALLENGE,
    KEY_ALICE,
    address_of,
    create,
    wallet_env,  # noqa: F401 (autouse fixture)
)

ALICE = address_of(KEY_ALICE)


async def test_creates_challenge_with_valid_nonce(client, services):
    response = await client.post(CHALLENGE, json={"wallet_address": ALICE, "chain_id": "eip155:1"})

    assert response.status == 201
    body = response.json()
    assert set(body) == {"challenge_id", "message", "nonce", "issued_at", "expires_at"}
    assert re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}", body["challenge_id"])
    # 128 bits: 32 hex characters, alphanumeric as EIP-4361 requires of a nonce.
    assert re.fullmatch(r"[0-9a-f]{32}", body["nonce"])
    assert f"Nonce: {body['nonce']}" in body["message"]
    row = await services.db.prepare("SELECT * FROM wallet_challenges WHERE id = ?").bind(body["challenge_id"]).first()
    assert row["status"] == "PENDING"
    assert row["nonce"] == body["nonce"]
    assert row["message"] == body["message"]
    assert row["chain_id"] == "eip155:1"
    assert row["format"] == "plain"
    assert row["requested_by"] is None
    assert row["verified_at"] is None


async def test_nonces_are_unique_and_unpredictable(client):
    nonces = [(await create(client))["nonce"] for _ in range(200)]
    assert len(set(nonces)) == len(nonces)
    # Every hex digit shows up at every position across 200 draws from a uniform 128-bit source; a
    # counter, a timestamp or a low-entropy source would leave most positions nearly constant.
    for position in range(32):
        assert len({nonce[position] for nonce in nonces}) >= 8


async def test_challenge_expires_after_ttl(client):
    body = await create(client)
    assert body["issued_at"] == "2026-11-24T12:00:00.000Z"
    assert parse_time(body["expires_at"]) - parse_time(body["issued_at"]) == timedelta(seconds=600)
    assert f"Expires At: {body['expires_at']}" in body["message"]


@pytest.mark.parametrize(("configured", "expected"), [("120", 120), ("0", 600), ("junk", 600), ("999999", 86400)])
async def test_ttl_comes_from_configuration(client, env_vars, configured, expected):
    env_vars["WALLET_CHALLENGE_TTL_SECONDS"] = configured
    body = await create(client)
    assert parse_time(body["expires_at"]) - parse_time(body["issued_at"]) == timedelta(seconds=expected)


async def test_plain_message_reads_as_documented(client):
    body = await create(client)
    lines = body["message"].split("\n")
    assert lines[0] == BRAND_LINE == "TattleHash Gatekeeper — wallet ownership"
    assert f"Wallet: {to_checksum_address(ALICE)}" in lines
    assert "Chain: eip155:1 (eth-mainnet)" in lines
    assert f"Issued At: {body['issued_at']}" in lines
    assert f"Challenge ID: {body['challenge_id']}" in lines
    assert lines[-1] == f"Purpose: {PURPOSE}" == "Purpose: gatekeeper_wallet_ownership"


async def test_local_chain_only_when_configured(client, env_vars):
    response = await client.post(CHALLENGE, json={"wallet_address": ALICE, "chain_id": "eip155:31337"})
    assert response.error_code == "E1002"


async def test_local_chain_when_rpc_url_local_is_set(client, env_vars):
    env_vars["RPC_URL_LOCAL"] = "http://127.0.0.1:8545"
    body = await create(client, chain_id="eip155:31337")
    assert "Chain: eip155:31337 (local)" in body["message"]


@pytest.mark.parametrize(
    "address",
    [
        "0x742d35Cc6634C0532925a3b844Bc9e7595f8fE00",  # the seed's example: its checksum is wrong
        ALICE[:-1] + ("a" if ALICE[-1] != "a" else "b"),  # one digit off but still mixed case
        "0x0000000000000000000000000000000000000000",
        "0x" + "g" * 40,
        "742d35cc6634c0532925a3b844bc9e7595f8fe00",
        "0x742d35cc6634c0532925a3b844bc9e7595f8fe",
        "0x742d35cc6634c0532925a3b844bc9e7595f8fe0000",
        "",
        " ",
        "0X742D35CC6634C0532925A3B844BC9E7595F8FE00",
        "0x\u066742d35cc6634c0532925a3b844bc9e7595f8fe00",  # Arabic-Indic digit seven
    ],
    ids=[
        "bad-checksum",
        "typo",
        "zero",
        "non-hex",
        "no-0x",
        "short",
        "long",
        "empty",
        "blank",
        "0X",
        "unicode-digit",
    ],
)
async def test_bad_addresses_are_e1001(client, address):
    response = await client.post(CHALLENGE, json={"wallet_address": address, "chain_id": "eip155:1"})
    assert response.status == 400
    assert response.error_code == "E1001"
    assert response.json()["error"]["details"] == {"field": "wallet_address"}


async def test_lone_surrogates_are_a_validation_error(client):
    response = await client.post(CHALLENGE, json={"wallet_address": "\ud800" * 42, "chain_id": "eip155:1"})
    assert response.status == 400
    assert response.error_code == "E9004"


@pytest.mark.parametrize(
    "chain_id",
    [
        "eip155:999999",
        "cosmos:cosmoshub-4",
        "eip155:01",
        "eip155:",
        "eip155:1 ",
        "1",
        "eth-mainnet",
        "eip155:" + "9" * 30,
        "EIP155:1",
        "",
    ],
)
async def test_unsupported_chains_are_e1002(client, chain_id):
    response = await client.post(CHALLENGE, json={"wallet_address": ALICE, "chain_id": chain_id})
    if chain_id.strip() == "eip155:1":
        # Surrounding whitespace is stripped from every string field, like any other typo-level noise.
        assert response.status == 201
        return
    assert response.status == 400
    assert response.error_code == "E1002"
    assert response.json()["error"]["details"] == {"field": "chain_id"}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"chain_id": "eip155:1"}, "wallet_address"),
        ({"wallet_address": ALICE}, "chain_id"),
        ({"wallet_address": 123, "chain_id": "eip155:1"}, "wallet_address"),
        ({"wallet_address": ALICE, "chain_id": 1}, "chain_id"),
        ({"wallet_address": [ALICE], "chain_id": "eip155:1"}, "wallet_address"),
        ({"wallet_address": ALICE, "chain_id": "eip155:1", "format": "eip712"}, "format"),
        ({"wallet_address": ALICE, "chain_id": "eip155:1", "format": None}, "format"),
        ({"wallet_address": ALICE, "chain_id": "eip155:1", "user_id": 7}, "user_id"),
        ({"wallet_address": ALICE, "chain_id": "eip155:1", "domain": {"a": 1}}, "domain"),
        ({"wallet_address": ALICE, "chain_id": "eip155:1", "nonce": "mine"}, "nonce"),
        ({"wallet_address": ALICE, "chain_id": "eip155:1", "domain": "localhost"}, "domain"),
        ({"wallet_address": ALICE, "chain_id": "eip155:1", "uri": "https://localhost"}, "uri"),
    ],
)
async def test_wrong_body_fields_are_e9004_naming_the_field(client, body, field):
    response = await client.post(CHALLENGE, json=body)
    assert response.status == 400
    assert response.error_code == "E9004"
    fields = [entry["field"] for entry in response.json()["error"]["details"]["fields"]]
    assert field in fields


async def test_malformed_json_and_content_type(client):
    bad_json = await client.request("POST", CHALLENGE, body=b"{", headers={"content-type": "application/json"})
    assert bad_json.status == 400
    form = await client.request("POST", CHALLENGE, body=b"a=b", headers={"content-type": "text/plain"})
    assert form.status == 415


async def test_user_id_must_be_the_callers_own(client, make_user, services):
    user_id, api_key = await make_user()
    other_id, _ = await make_user()

    assert (
        await client.post(
            CHALLENGE, json={"wallet_address": ALICE, "chain_id": "eip155:1", "user_id": other_id}, token=api_key
        )
    ).error_code == "E9007"
    anonymous = await client.post(CHALLENGE, json={"wallet_address": ALICE, "chain_id": "eip155:1", "user_id": user_id})
    assert anonymous.status == 403
    assert anonymous.error_code == "E9007"

    own = await create(client, token=api_key, user_id=user_id)
    row = (
        await services.db.prepare("SELECT requested_by FROM wallet_challenges WHERE id = ?")
        .bind(own["challenge_id"])
        .first()
    )
    assert row["requested_by"] == user_id


async def test_flag_off_is_503(client, env_vars):
    env_vars["FF_GATEKEEPER_V2"] = "0"
    response = await client.post(CHALLENGE, json={"wallet_address": ALICE, "chain_id": "eip155:1"})
    assert response.status == 503
    assert response.error_code == "E9010"


async def test_routes_are_in_the_openapi_document(client):
    document = (await client.get("/openapi.json")).json()
    challenge = document["paths"][CHALLENGE]["post"]
    verify = document["paths"]["/gatekeeper/v2/wallet/verify"]["post"]
    assert "201" in challenge["responses"] and "E1001" in challenge["responses"]["400"]["description"]
    assert {"200", "400", "404", "409", "410", "502", "503"} <= set(verify["responses"])
