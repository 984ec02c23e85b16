"""POST /gatekeeper/v2/wallet/verify: EIP-191 signatures as wallets make them, single use, expiry, sessions."""

from __future__ import annotations

import json
import sys

import pytest
from eth_hash.auto import keccak

from chain.signatures import SECP256K1_P, default_backend, recover_address
from tests.test_wallet_support import (
    KEY_ALICE,
    KEY_BOB,
    KEY_CAROL,
    RPC_URL,
    VERIFY,
    address_of,
    create,
    rpc_methods,
    rpc_node,
    sign,
    to_compact,
    verify,
    wallet_env,  # noqa: F401 (autouse fixture)
)

ALICE = address_of(KEY_ALICE).lower()


async def challenge_row(services, challenge_id: str) -> dict:
    return await services.db.prepare("SELECT * FROM wallet_challenges WHERE id = ?").bind(challenge_id).first()


async def count(services, table: str) -> int:
    return await services.db.prepare(f"SELECT COUNT(*) AS n FROM {table}").first("n")


# --- the seed's phase-2 gate ----------------------------------------------------------------------


async def test_verifies_valid_eip191_signature(client, services):
    challenge = await create(client)
    signature = sign(challenge["message"], KEY_ALICE)

    response = await verify(client, challenge["challenge_id"], signature)

    assert response.status == 200, response.text
    body = response.json()
    assert set(body) == {"status", "wallet_address", "verified_at", "user_id", "session_token", "session_expires_at"}
    assert body["status"] == "VERIFIED"
    assert body["wallet_address"] == ALICE
    assert body["verified_at"] == "2026-11-24T12:00:00.000Z"
    assert body["session_expires_at"] == "2026-11-25T12:00:00.000Z"
    row = await challenge_row(services, challenge["challenge_id"])
    assert (row["status"], row["verified_at"], row["verified_user_id"], row["signature_type"]) == (
        "VERIFIED",
        body["verified_at"],
        body["user_id"],
        "EOA",
    )
    wallet = await services.db.prepare("SELECT * FROM wallets WHERE address = ?").bind(ALICE).first()
    assert wallet == {
        "address": ALICE,
        "user_id": body["user_id"],
        "first_verified_at": body["verified_at"],
        "last_verified_at": body["verified_at"],
        "linked_at": body["verified_at"],
    }
    # The session is a working bearer for the wallet's (new) user.
    me = await client.get("/me", token=body["session_token"])
    assert me.status == 200
    assert me.json()["id"] == body["user_id"]
    assert me.json()["wallets"] == [ALICE]


async def test_rejects_invalid_signature(client, services, httpx_mock):
    # Bob signs Alice's challenge: recovery yields Bob; Alice's address has no code, so it is a mismatch.
    httpx_mock.add_callback(rpc_node(code="0x"), url=RPC_URL)
    challenge = await create(client)

    response = await verify(client, challenge["challenge_id"], sign(challenge["message"], KEY_BOB))

    assert response.status == 400
    assert response.json()["error"]["code"] == "E1006"
    assert response.json()["error"]["details"] == {"expected": ALICE, "recovered": address_of(KEY_BOB).lower()}
    assert rpc_methods(httpx_mock) == ["eth_getCode"]
    # A refusal spends nothing: the right signature still works afterwards.
    assert (await challenge_row(services, challenge["challenge_id"]))["status"] == "PENDING"
    assert (await verify(client, challenge["challenge_id"], sign(challenge["message"], KEY_ALICE))).status == 200


async def test_signature_over_another_message_is_rejected(client, httpx_mock):
    httpx_mock.add_callback(rpc_node(code="0x"), url=RPC_URL)
    first, second = await create(client), await create(client)

    response = await verify(client, second["challenge_id"], sign(first["message"], KEY_ALICE))

    assert response.error_code == "E1006"


async def test_rejects_expired_challenge(client, services, clock):
    challenge = await create(client)
    signature = sign(challenge["message"], KEY_ALICE)
    clock.advance(601)

    response = await verify(client, challenge["challenge_id"], signature)

    assert response.status == 410
    assert response.error_code == "E1004"
    row = await challenge_row(services, challenge["challenge_id"])
    assert row["status"] == "EXPIRED"
    assert row["verified_at"] is None
    # Moving the clock back cannot revive it: EXPIRED is stored, not recomputed.
    clock.advance(-601)
    assert (await verify(client, challenge["challenge_id"], signature)).error_code == "E1004"
    assert await count(services, "wallets") == 0


async def test_challenge_expires_after_ttl(client, clock):
    ok, late = await create(client), await create(client)
    clock.advance(599.999)
    assert (await verify(client, ok["challenge_id"], sign(ok["message"], KEY_ALICE))).status == 200
    clock.advance(0.001)  # exactly at expires_at: already expired
    assert (await verify(client, late["challenge_id"], sign(late["message"], KEY_ALICE))).error_code == "E1004"


async def test_rejects_already_used_challenge(client, services):
    challenge = await create(client)
    signature = sign(challenge["message"], KEY_ALICE)
    assert (await verify(client, challenge["challenge_id"], signature)).status == 200

    again = await verify(client, challenge["challenge_id"], signature)

    assert again.status == 409
    assert again.error_code == "E1007"
    assert await count(services, "events") == 1
    assert await count(services, "users") == 1


async def test_normalizes_addresses_to_lowercase(client, services):
    checksummed = address_of(KEY_ALICE)
    assert checksummed != checksummed.lower()
    for given in (checksummed, checksummed.lower(), "0x" + checksummed[2:].upper()):
        challenge = await create(client, wallet_address=given)
        row = await challenge_row(services, challenge["challenge_id"])
        assert row["wallet_address"] == ALICE
        response = await verify(client, challenge["challenge_id"], sign(challenge["message"], KEY_ALICE))
        assert response.json()["wallet_address"] == ALICE
    rows = (await services.db.prepare("SELECT address FROM wallets").all()).results
    assert rows == [{"address": ALICE}]


# --- signature encodings -------------------------------------------------------------------------


def test_the_challenge_message_is_not_ascii_and_the_prefix_counts_bytes():
    """The plain message's brand line has an em dash: a character-count prefix would hash differently."""
    message = "TattleHash Gatekeeper — wallet ownership\nNonce: 1"
    assert len(message.encode()) != len(message)
    signature = sign(message, KEY_ALICE)
    byte_prefixed = keccak(b"\x19Ethereum Signed Message:\n" + str(len(message.encode())).encode() + message.encode())
    char_prefixed = keccak(b"\x19Ethereum Signed Message:\n" + str(len(message)).encode() + message.encode())
    assert recover_address(byte_prefixed, signature) == ALICE
    assert recover_address(char_prefixed, signature) != ALICE


async def test_non_ascii_message_verifies_end_to_end(client):
    challenge = await create(client)
    assert "—" in challenge["message"]
    assert len(challenge["message"].encode()) > len(challenge["message"])
    response = await verify(client, challenge["challenge_id"], sign(challenge["message"], KEY_ALICE))
    assert response.status == 200


@pytest.mark.parametrize(
    "variant",
    [
        pytest.param(lambda sig: sig, id="v=27/28"),
        pytest.param(lambda sig: sig[:-2] + f"{int(sig[-2:], 16) - 27:02x}", id="v=0/1"),
        pytest.param(to_compact, id="eip-2098"),
        pytest.param(lambda sig: sig[2:], id="no-0x"),
        pytest.param(lambda sig: "0x" + sig[2:].upper(), id="upper-hex"),
    ],
)
async def test_accepted_signature_encodings(client, variant):
    challenge = await create(client)
    signature = variant(sign(challenge["message"], KEY_ALICE))
    response = await verify(client, challenge["challenge_id"], signature)
    assert response.status == 200, response.text


def _flip_v(sig: str) -> str:
    return sig[:-2] + ("1c" if sig.endswith("1b") else "1b")


async def test_wrong_recovery_id_recovers_someone_else(client, httpx_mock):
    httpx_mock.add_callback(rpc_node(code="0x"), url=RPC_URL)
    challenge = await create(client)
    response = await verify(client, challenge["challenge_id"], _flip_v(sign(challenge["message"], KEY_ALICE)))
    assert response.error_code in {"E1005", "E1006"}
    assert response.status == 400


@pytest.mark.parametrize(
    ("mangle", "reason"),
    [
        (lambda sig: sig[:-1], "odd length"),
        (lambda sig: "0x" + "zz" + sig[4:], "not valid hex"),
        (lambda sig: "0x" + " " + sig[3:], "not valid hex"),
        (lambda sig: "", "empty"),
        (lambda sig: "0x" + "00" * 16_385, "longer than 16384 bytes"),
    ],
    ids=["odd", "non-hex", "space", "empty", "too-long"],
)
async def test_signatures_that_are_not_hex_are_e1008_without_rpc(client, services, httpx_mock, mangle, reason):
    challenge = await create(client)
    signature = mangle(sign(challenge["message"], KEY_ALICE))

    response = await verify(client, challenge["challenge_id"], signature)

    assert response.status == 400, response.text
    assert response.error_code == "E1008"
    assert reason in response.json()["error"]["details"]["reason"]
    assert (await challenge_row(services, challenge["challenge_id"]))["status"] == "PENDING"
    assert httpx_mock.get_requests() == []


async def test_the_longest_signature_accepted_reaches_the_chain(client, httpx_mock):
    httpx_mock.add_callback(rpc_node(code="0x"), url=RPC_URL)
    challenge = await create(client)
    response = await verify(client, challenge["challenge_id"], "0x" + "00" * 16_384)
    assert response.error_code == "E1008"
    assert "not 16384" in response.json()["error"]["details"]["reason"]
    assert rpc_methods(httpx_mock) == ["eth_getCode"]


@pytest.mark.parametrize(
    ("mangle", "reason"),
    [
        (lambda sig: sig[:-2] + "1d", "v must be"),  # v = 29
        (lambda sig: sig[:-2] + "02", "v must be"),
        (lambda sig: sig[:-4], "not 63"),
        (lambda sig: sig + "00", "not 66"),
        (lambda sig: "0x", "not 0"),
        (lambda sig: "0x" + "00" * 32 + sig[66:], "r is out of range"),
    ],
    ids=["v29", "v2", "63-bytes", "66-bytes", "0x-only", "r=0"],
)
async def test_non_ecdsa_signatures_for_a_wallet_without_code_are_e1008(client, services, httpx_mock, mangle, reason):
    """Any of these could be a contract wallet's own format, so the chain is asked; with no code there, E1008."""
    httpx_mock.add_callback(rpc_node(code="0x"), url=RPC_URL)
    challenge = await create(client)
    signature = mangle(sign(challenge["message"], KEY_ALICE))

    response = await verify(client, challenge["challenge_id"], signature)

    assert response.status == 400, response.text
    assert response.error_code == "E1008"
    assert reason in response.json()["error"]["details"]["reason"]
    assert "no contract code" in response.json()["error"]["details"]["reason"]
    assert rpc_methods(httpx_mock) == ["eth_getCode"]
    assert (await challenge_row(services, challenge["challenge_id"]))["status"] == "PENDING"


def _unrecoverable(signature: str) -> str:
    """The real signature with r replaced by the smallest x that is on no secp256k1 point."""
    x = 1
    while pow((x**3 + 7) % SECP256K1_P, (SECP256K1_P - 1) // 2, SECP256K1_P) == 1:
        x += 1
    return "0x" + x.to_bytes(32, "big").hex() + signature[66:]


async def test_unrecoverable_signature_is_e1005(client, httpx_mock):
    httpx_mock.add_callback(rpc_node(code="0x"), url=RPC_URL)
    challenge = await create(client)

    response = await verify(client, challenge["challenge_id"], _unrecoverable(sign(challenge["message"], KEY_ALICE)))

    assert response.status == 400
    assert response.error_code == "E1005"


# --- lookup and body validation ------------------------------------------------------------------


@pytest.mark.parametrize(
    "challenge_id",
    [
        "4d6f7b0e-8a8c-4c59-a3a5-9b1f0f4b2e11",  # well-formed but unknown
        "not-a-uuid",
        "",
        "1' OR '1'='1",
        "4d6f7b0e-8a8c-1c59-a3a5-9b1f0f4b2e11",  # UUID but not version 4
        "x" * 5000,
    ],
    ids=["unknown", "word", "empty", "sql", "uuid1", "long"],
)
async def test_unknown_or_non_uuid_challenge_is_404(client, challenge_id):
    response = await verify(client, challenge_id, "0x" + "11" * 65)
    assert response.status == 404
    assert response.error_code == "E1003"


@pytest.mark.parametrize("field", ["challenge_id", "signature"])
async def test_lone_surrogates_are_a_validation_error(client, field):
    body = {"challenge_id": "4d6f7b0e-8a8c-4c59-a3a5-9b1f0f4b2e11", "signature": "0x00"}
    body[field] = "\ud800"
    response = await client.post(VERIFY, json=body)
    assert response.status == 400
    assert response.error_code == "E9004"


async def test_challenge_id_is_case_insensitive(client):
    challenge = await create(client)
    response = await verify(client, challenge["challenge_id"].upper(), sign(challenge["message"], KEY_ALICE))
    assert response.status == 200


@pytest.mark.parametrize(
    "body",
    [
        {"challenge_id": "4d6f7b0e-8a8c-4c59-a3a5-9b1f0f4b2e11"},
        {"signature": "0x00"},
        {"challenge_id": 5, "signature": "0x00"},
        {"challenge_id": "4d6f7b0e-8a8c-4c59-a3a5-9b1f0f4b2e11", "signature": 12345},
        {"challenge_id": "4d6f7b0e-8a8c-4c59-a3a5-9b1f0f4b2e11", "signature": ["0x00"]},
        {"challenge_id": None, "signature": None},
        {"challenge_id": "4d6f7b0e-8a8c-4c59-a3a5-9b1f0f4b2e11", "signature": "0x00", "extra": 1},
    ],
)
async def test_wrong_body_types_are_e9004(client, body):
    response = await client.post(VERIFY, json=body)
    assert response.status == 400
    assert response.error_code == "E9004"
    assert response.json()["error"]["details"]["fields"]


async def test_non_object_body_is_e9004(client):
    response = await client.request("POST", VERIFY, body=b"[1, 2]", headers={"content-type": "application/json"})
    assert response.error_code == "E9004"


# --- users, linking, sessions --------------------------------------------------------------------


async def test_second_verification_reuses_the_wallets_user(client, services, clock):
    first = await create(client)
    one = (await verify(client, first["challenge_id"], sign(first["message"], KEY_ALICE))).json()
    clock.advance(60)
    second = await create(client)
    two = (await verify(client, second["challenge_id"], sign(second["message"], KEY_ALICE))).json()

    assert two["user_id"] == one["user_id"]
    assert await count(services, "users") == 1
    wallet = await services.db.prepare("SELECT * FROM wallets").first()
    assert wallet["first_verified_at"] == one["verified_at"]
    assert wallet["last_verified_at"] == two["verified_at"] == "2026-11-24T12:01:00.000Z"


async def test_bearer_links_the_wallet_to_the_callers_user(client, services, make_user):
    user_id, api_key = await make_user(email="partner@example.com")
    challenge = await create(client)

    body = (
        await verify(client, challenge["challenge_id"], sign(challenge["message"], KEY_ALICE), token=api_key)
    ).json()

    assert body["user_id"] == user_id
    assert await count(services, "users") == 1  # no user created for the wallet
    me = await client.get("/me", token=api_key)
    assert me.json()["wallets"] == [ALICE]


async def test_verifying_with_another_users_bearer_relinks_with_proof_of_key(client, services, make_user, log_sink):
    first = await create(client)
    original = (await verify(client, first["challenge_id"], sign(first["message"], KEY_ALICE))).json()["user_id"]
    new_owner, api_key = await make_user()
    second = await create(client)

    body = (await verify(client, second["challenge_id"], sign(second["message"], KEY_ALICE), token=api_key)).json()

    assert body["user_id"] == new_owner
    owner = await services.db.prepare("SELECT user_id FROM wallets WHERE address = ?").bind(ALICE).first("user_id")
    assert owner == new_owner
    events = (await services.db.prepare("SELECT user_id, payload FROM events ORDER BY rowid").all()).results
    assert [event["user_id"] for event in events] == [original, new_owner]
    assert json.loads(events[1]["payload"])["relinked_from_user_id"] == original
    relinks = [record for record in log_sink.records() if record["event"] == "wallet_relinked"]
    assert relinks and relinks[0]["from_user_id"] == original and relinks[0]["to_user_id"] == new_owner


async def test_challenge_requested_by_a_user_can_only_be_spent_by_that_user(client, make_user):
    owner_id, owner_key = await make_user()
    _, other_key = await make_user()
    challenge = await create(client, token=owner_key, user_id=owner_id)
    signature = sign(challenge["message"], KEY_ALICE)

    assert (await verify(client, challenge["challenge_id"], signature)).error_code == "E9005"
    assert (await verify(client, challenge["challenge_id"], signature, token=other_key)).error_code == "E9007"
    response = await verify(client, challenge["challenge_id"], signature, token=owner_key)
    assert response.status == 200
    assert response.json()["user_id"] == owner_id


async def test_challenge_made_with_a_bearer_belongs_to_that_user_even_without_user_id(client, make_user):
    owner_id, owner_key = await make_user()
    challenge = await create(client, token=owner_key)
    signature = sign(challenge["message"], KEY_ALICE)
    assert (await verify(client, challenge["challenge_id"], signature)).status == 401
    assert (await verify(client, challenge["challenge_id"], signature, token=owner_key)).json()["user_id"] == owner_id


async def test_session_token_of_a_wallet_user_links_more_wallets(client, services):
    first = await create(client)
    session = (await verify(client, first["challenge_id"], sign(first["message"], KEY_ALICE))).json()
    second = await create(client, key=KEY_BOB, token=session["session_token"])

    body = (
        await verify(client, second["challenge_id"], sign(second["message"], KEY_BOB), token=session["session_token"])
    ).json()

    assert body["user_id"] == session["user_id"]
    me = await client.get("/me", token=body["session_token"])
    assert sorted(me.json()["wallets"]) == sorted([ALICE, address_of(KEY_BOB).lower()])


async def test_invalid_bearer_is_401_not_anonymous(client):
    challenge = await create(client)
    response = await verify(client, challenge["challenge_id"], sign(challenge["message"], KEY_ALICE), token="thk_nope")
    assert response.status == 401
    assert response.error_code == "E9006"


async def test_wallet_verified_event_is_written_with_the_verification(client, services):
    challenge = await create(client)
    body = (await verify(client, challenge["challenge_id"], sign(challenge["message"], KEY_ALICE))).json()
    event = await services.db.prepare("SELECT * FROM events").first()
    assert event["type"] == "wallet.verified"
    assert event["user_id"] == body["user_id"]
    assert event["created_at"] == body["verified_at"]
    payload = json.loads(event["payload"])
    assert payload == {
        "wallet_address": ALICE,
        "chain_id": "eip155:1",
        "wallet_challenge_id": challenge["challenge_id"],
        "user_id": body["user_id"],
        "signature_type": "EOA",
        "verified_at": body["verified_at"],
        "new_user": True,
    }
    assert body["session_token"] not in event["payload"]


async def test_session_token_is_never_logged(client, log_sink):
    challenge = await create(client)
    body = (await verify(client, challenge["challenge_id"], sign(challenge["message"], KEY_ALICE))).json()
    token = body["session_token"]
    assert any(record["event"] == "wallet_verified" for record in log_sink.records())
    assert all(token not in line and token.split(".")[-1] not in line for line in log_sink.lines)


async def test_missing_hmac_secret_fails_before_spending_the_challenge(client, services, env_vars):
    challenge = await create(client)
    env_vars.pop("HMAC_SECRET")  # Env reads the same dict the services were built from

    response = await verify(client, challenge["challenge_id"], sign(challenge["message"], KEY_ALICE))

    assert response.status == 500
    assert response.error_code == "E9001"
    assert response.json()["error"]["details"]["variable"] == "HMAC_SECRET"
    assert (await challenge_row(services, challenge["challenge_id"]))["status"] == "PENDING"


async def test_feature_flag_off_is_503(client, env_vars):
    env_vars["FF_GATEKEEPER_V2"] = "false"
    response = await verify(client, "4d6f7b0e-8a8c-4c59-a3a5-9b1f0f4b2e11", "0x00")
    assert response.status == 503
    assert response.error_code == "E9010"


# --- both recovery backends ----------------------------------------------------------------------


async def test_fast_pure_python_path_when_coincurve_is_missing(client, monkeypatch):
    """The Workers runtime has no coincurve (and CPython no FFI): block its import and verify through the endpoint."""
    monkeypatch.setitem(sys.modules, "coincurve", None)
    default_backend.cache_clear()
    try:
        assert default_backend().name == "fast-pure"
        challenge = await create(client)
        response = await verify(client, challenge["challenge_id"], sign(challenge["message"], KEY_ALICE))
        assert response.status == 200
    finally:
        monkeypatch.undo()
        default_backend.cache_clear()
    assert default_backend().name == "coincurve"


# --- RPC is only needed for contract wallets -----------------------------------------------------


async def test_eoa_verification_makes_no_rpc_call(client, httpx_mock):
    challenge = await create(client)
    assert (await verify(client, challenge["challenge_id"], sign(challenge["message"], KEY_ALICE))).status == 200
    assert httpx_mock.get_requests() == []


async def test_rpc_outage_during_contract_check_is_502(client, services, httpx_mock):
    httpx_mock.add_response(url=RPC_URL, status_code=503, is_reusable=True)
    challenge = await create(client)

    response = await verify(client, challenge["challenge_id"], sign(challenge["message"], KEY_CAROL))

    assert response.status == 502
    assert response.error_code == "E2004"
    assert RPC_URL not in response.text and "127.0.0.1" not in response.text
    assert (await challenge_row(services, challenge["challenge_id"]))["status"] == "PENDING"


async def test_chain_without_endpoints_anymore_is_502(client, env_vars):
    challenge = await create(client)
    env_vars.pop("RPC_URL_ETH_MAINNET")
    response = await verify(client, challenge["challenge_id"], sign(challenge["message"], KEY_CAROL))
    assert response.error_code == "E2004"
