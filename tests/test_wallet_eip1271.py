"""EIP-1271 contract wallets: a real anvil chain with the ContractWallet fixture, plus the RPC edge cases."""

from __future__ import annotations

import json

import httpx
import pytest
from eth_abi import encode

from chain import eip1271
from chain.networks import NETWORKS, UnsupportedNetwork
from chain.provider import DEFAULT_RPC_TIMEOUT_SECONDS, build_rpc_client, rpc_timeout
from chain.rpc import JsonRpcClient, RpcUnavailable
from chain.signatures import eip191_message_hash, signature_to_bytes65
from core.config import Env
from local.anvil import AnvilNode
from tests.support.contracts import deploy
from tests.test_wallet_support import (
    KEY_ALICE,
    KEY_BOB,
    RPC_URL,
    address_of,
    create,
    rpc_methods,
    rpc_node,
    sign,
    to_compact,
    verify,
    wallet_env,  # noqa: F401 (autouse fixture)
    with_v,
)

LOCAL = "eip155:31337"
OWNER_KEY = KEY_ALICE
STRANGER_KEY = KEY_BOB


@pytest.fixture(scope="module")
def contract_wallet(anvil: AnvilNode) -> str:
    """A ContractWallet owned by OWNER_KEY's address; checksummed address."""
    return deploy(anvil, "ContractWallet", address_of(OWNER_KEY))


@pytest.fixture
def on_anvil(env_vars: dict[str, str], anvil: AnvilNode) -> AnvilNode:
    """Request before `client`: points the `local` network (eip155:31337) at the test chain."""
    env_vars["RPC_URL_LOCAL"] = anvil.url
    return anvil


async def test_contract_wallet_verifies_with_its_owners_signature(on_anvil, client, services, contract_wallet):
    challenge = await create(client, chain_id=LOCAL, wallet_address=contract_wallet)

    response = await verify(client, challenge["challenge_id"], sign(challenge["message"], OWNER_KEY))

    assert response.status == 200, response.text
    assert response.json()["wallet_address"] == contract_wallet.lower()
    row = await services.db.prepare("SELECT * FROM wallet_challenges").first()
    assert (row["status"], row["signature_type"]) == ("VERIFIED", "EIP1271")
    owner = services.db.prepare("SELECT user_id FROM wallets WHERE address = ?").bind(contract_wallet.lower())
    assert await owner.first("user_id") == response.json()["user_id"]


async def test_a_compact_signature_reaches_the_contract_unexpanded(on_anvil, client, contract_wallet):
    """No EIP-2098 expansion on the way: ContractWallet takes only 65 bytes, so it refuses the 64 it is given."""
    challenge = await create(client, chain_id=LOCAL, wallet_address=contract_wallet)
    response = await verify(client, challenge["challenge_id"], to_compact(sign(challenge["message"], OWNER_KEY)))
    assert response.error_code == "E1006", response.text
    assert response.json()["error"]["details"]["recovered"] == address_of(OWNER_KEY).lower()


async def test_contract_wallet_refuses_a_strangers_signature(on_anvil, client, services, contract_wallet):
    challenge = await create(client, chain_id=LOCAL, wallet_address=contract_wallet)

    response = await verify(client, challenge["challenge_id"], sign(challenge["message"], STRANGER_KEY))

    assert response.status == 400
    assert response.error_code == "E1006"
    assert response.json()["error"]["details"] == {
        "expected": contract_wallet.lower(),
        "recovered": address_of(STRANGER_KEY).lower(),
    }
    assert (await services.db.prepare("SELECT status FROM wallet_challenges").first("status")) == "PENDING"


async def test_owner_signature_does_not_verify_a_different_contract_challenge(on_anvil, client, contract_wallet):
    """The contract only vouches for the hash it is given: a signature over another challenge fails."""
    first = await create(client, chain_id=LOCAL, wallet_address=contract_wallet)
    second = await create(client, chain_id=LOCAL, wallet_address=contract_wallet)
    response = await verify(client, second["challenge_id"], sign(first["message"], OWNER_KEY))
    assert response.error_code == "E1006"


async def test_eoa_on_the_local_chain_needs_no_contract(on_anvil, client):
    challenge = await create(client, chain_id=LOCAL, key=STRANGER_KEY)
    response = await verify(client, challenge["challenge_id"], sign(challenge["message"], STRANGER_KEY))
    assert response.status == 200


async def test_is_valid_signature_against_the_real_contract(anvil, contract_wallet):
    message = "TattleHash Gatekeeper — wallet ownership"
    digest = eip191_message_hash(message)
    async with httpx.AsyncClient() as http:
        client = JsonRpcClient([anvil.url], http=http)
        good = signature_to_bytes65(sign(message, OWNER_KEY))
        bad = signature_to_bytes65(sign(message, STRANGER_KEY))
        assert await eip1271.is_valid_signature(client, contract_wallet, digest, good) is True
        assert await eip1271.is_valid_signature(client, contract_wallet, digest, bad) is False
        assert await eip1271.is_valid_signature(client, contract_wallet, digest, good[:64]) is False
        # An address without code is never a contract wallet, whatever the signature.
        assert await eip1271.is_valid_signature(client, address_of(OWNER_KEY), digest, good) is False


# --- encoding and RPC edge cases (pytest-httpx; no chain) ---------------------------------------


def test_calldata_matches_the_abi_encoder():
    digest = bytes(range(32))
    for signature in (b"\x01" * 65, b"\x02" * 64, b"", b"\x03" * 200):
        expected = bytes.fromhex("1626ba7e") + encode(["bytes32", "bytes"], [digest, signature])
        assert eip1271.encode_is_valid_signature(digest, signature) == expected
    with pytest.raises(ValueError):
        eip1271.encode_is_valid_signature(b"\x00" * 31, b"")


@pytest.mark.parametrize(
    ("call_result", "expected"),
    [
        ("0x1626ba7e" + "00" * 28, True),
        ("0x1626ba7e" + "00" * 28 + "ff" * 32, True),  # extra words after the first are ignored
        ("0x1626ba7e", False),  # not ABI-encoded
        ("0x1626ba7e" + "00" * 27 + "01", False),
        ("0xffffffff" + "00" * 28, False),
        ("0x", False),
    ],
)
async def test_only_the_full_magic_word_counts(httpx_mock, call_result, expected):
    httpx_mock.add_callback(rpc_node(code="0x6080", call_result=call_result), url=RPC_URL, is_reusable=True)
    async with httpx.AsyncClient() as http:
        client = JsonRpcClient([RPC_URL], http=http, retries=0)
        assert await eip1271.is_valid_signature(client, address_of(KEY_ALICE), bytes(32), bytes(65)) is expected
    assert rpc_methods(httpx_mock) == ["eth_getCode", "eth_call"]


async def test_revert_means_not_valid(httpx_mock):
    def node(request: httpx.Request) -> httpx.Response:
        call = json.loads(request.content)
        if call["method"] == "eth_getCode":
            return httpx.Response(200, json={"jsonrpc": "2.0", "id": call["id"], "result": "0x6080"})
        error = {"code": 3, "message": "execution reverted", "data": "0x"}
        return httpx.Response(200, json={"jsonrpc": "2.0", "id": call["id"], "error": error})

    httpx_mock.add_callback(node, url=RPC_URL, is_reusable=True)
    async with httpx.AsyncClient() as http:
        client = JsonRpcClient([RPC_URL], http=http, retries=0)
        assert await eip1271.is_valid_signature(client, address_of(KEY_ALICE), bytes(32), bytes(65)) is False


async def test_outage_propagates(httpx_mock):
    httpx_mock.add_exception(httpx.ConnectError("refused"), url=RPC_URL, is_reusable=True)
    async with httpx.AsyncClient() as http:
        client = JsonRpcClient([RPC_URL], http=http, retries=0)
        with pytest.raises(RpcUnavailable):
            await eip1271.is_valid_signature(client, address_of(KEY_ALICE), bytes(32), bytes(65))


@pytest.mark.parametrize(
    "variant",
    [
        pytest.param(lambda sig: sig, id="65-bytes"),
        pytest.param(lambda sig: with_v(sig, int(sig[-2:], 16) - 27), id="v=0/1"),
        pytest.param(to_compact, id="eip-2098"),
        pytest.param(lambda sig: "0x", id="empty"),
        pytest.param(lambda sig: sig + sig[2:] + "00", id="131-bytes"),
    ],
)
async def test_contract_wallet_verified_through_the_endpoint_with_a_mocked_node(client, services, httpx_mock, variant):
    httpx_mock.add_callback(
        rpc_node(code="0x6080", call_result="0x1626ba7e" + "00" * 28), url=RPC_URL, is_reusable=True
    )
    challenge = await create(client)
    signature = variant(sign(challenge["message"], STRANGER_KEY))

    response = await verify(client, challenge["challenge_id"], signature)

    assert response.status == 200
    assert (
        await services.db.prepare("SELECT signature_type FROM wallet_challenges").first("signature_type") == "EIP1271"
    )
    # The contract was asked about the challenge's own EIP-191 hash and exactly the bytes given: no v
    # re-encoding, no compact expansion, any length.
    call = json.loads(httpx_mock.get_requests()[1].content)
    data = bytes.fromhex(call["params"][0]["data"][2:])
    given = bytes.fromhex(signature[2:])
    assert data == eip1271.encode_is_valid_signature(eip191_message_hash(challenge["message"]), given)
    assert int.from_bytes(data[68:100], "big") == len(given)


# --- provider ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (None, DEFAULT_RPC_TIMEOUT_SECONDS),
        ("2.5", 2.5),
        ("0", 10.0),
        ("-1", 10.0),
        ("nan", 10.0),
        ("x", 10.0),
        ("600", 60.0),
    ],
)
def test_rpc_timeout_from_configuration(raw, expected):
    env = Env({} if raw is None else {"RPC_TIMEOUT_SECONDS": raw})
    assert rpc_timeout(env) == expected


async def test_build_rpc_client_uses_configured_endpoints_in_order():
    network = next(n for n in NETWORKS if n.name == "eth-mainnet")
    env = Env({"RPC_URL_ETH_MAINNET": "https://a.example/key1, https://b.example/key2", "RPC_PUBLIC_FALLBACKS": "no"})
    async with httpx.AsyncClient() as http:
        assert build_rpc_client(network, env, http).hosts == ["a.example", "b.example"]
        local = next(n for n in NETWORKS if n.name == "local")
        with pytest.raises(UnsupportedNetwork):
            build_rpc_client(local, env, http)
