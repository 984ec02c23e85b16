"""ERC-6492 on a real chain: a counterfactual smart account (factory + CREATE2) proves itself before it exists.

The account and factory are the compiled SmartAccountFactory fixture, the validator is the ERC's reference
ValidateSigOffchain; the owner signs with eth-account (personal_sign), as the account's wallet would.
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from eth_abi import encode

from chain import erc6492
from chain.erc6492_bytecode import VALIDATE_SIG_OFFCHAIN_BYTECODE
from chain.rpc import JsonRpcClient
from chain.signatures import MalformedSignature, eip191_message_hash
from local.anvil import AnvilNode
from tests.support.contracts import call, deploy, encode_call, load_artifact, transact
from tests.test_wallet_support import (
    KEY_ALICE,
    KEY_BOB,
    RPC_URL,
    address_of,
    create,
    rpc_methods,
    sign,
    verify,
    wallet_env,  # noqa: F401 (autouse fixture)
)

LOCAL = "eip155:31337"
OWNER_KEY = KEY_ALICE
STRANGER_KEY = KEY_BOB
FIXTURES = Path(__file__).resolve().parent / "fixtures" / "contracts"


@pytest.fixture(scope="module")
def factory(anvil: AnvilNode) -> str:
    return deploy(anvil, "SmartAccountFactory")


@pytest.fixture
def on_anvil(env_vars: dict[str, str], anvil: AnvilNode) -> AnvilNode:
    """Request before `client`: points the `local` network (eip155:31337) at the test chain."""
    env_vars["RPC_URL_LOCAL"] = anvil.url
    return anvil


@pytest.fixture
def forwarded(env_vars: dict[str, str], anvil: AnvilNode, httpx_mock) -> list[dict]:
    """Like on_anvil, but every JSON-RPC request goes through pytest-httpx to anvil, and is recorded."""
    env_vars["RPC_URL_LOCAL"] = RPC_URL
    seen: list[dict] = []

    def forward(request: httpx.Request) -> httpx.Response:
        seen.append(json.loads(request.content))
        upstream = urllib.request.Request(anvil.url, data=request.content, headers={"content-type": "application/json"})
        with urllib.request.urlopen(upstream, timeout=10) as answer:
            return httpx.Response(200, content=answer.read(), headers={"content-type": "application/json"})

    httpx_mock.add_callback(forward, url=RPC_URL, is_reusable=True)
    return seen


_salts = iter(range(1, 1_000_000))


def counterfactual(node: AnvilNode, factory: str, owner_key: str = OWNER_KEY) -> tuple[str, bytes]:
    """A fresh account address (not deployed) and the factory calldata that would deploy it."""
    salt = next(_salts).to_bytes(32, "big")
    owner = address_of(owner_key)
    account = call(node, factory, "accountAddress", [owner, salt], contract="SmartAccountFactory")
    calldata = bytes.fromhex(encode_call("createAccount", [owner, salt], contract="SmartAccountFactory")[2:])
    return account, calldata


def wrap(factory: str, calldata: bytes, signature: str) -> str:
    """concat(abi.encode((factory, factoryCalldata, signature), (address, bytes, bytes)), magicBytes)."""
    inner = bytes.fromhex(signature[2:])
    return "0x" + (encode(["address", "bytes", "bytes"], [factory, calldata, inner]) + erc6492.MAGIC_SUFFIX).hex()


async def stored(services, challenge_id: str) -> tuple[str, str]:
    sql = "SELECT status, signature_type FROM wallet_challenges WHERE id = ?"
    row = await services.db.prepare(sql).bind(challenge_id).first()
    return row["status"], row["signature_type"]


# --- through the endpoint, on anvil -----------------------------------------------------------------------


# Only the service's RPC URL is mocked (and forwarded); the test's own calls reach anvil directly.
@pytest.mark.httpx_mock(should_mock=lambda request: request.url.port == 9)
async def test_undeployed_account_verifies_via_erc6492_in_one_eth_call(
    forwarded, anvil, client, services, factory, log_sink
):
    account, calldata = counterfactual(anvil, factory)
    block = anvil.rpc("eth_blockNumber")
    challenge = await create(client, chain_id=LOCAL, wallet_address=account)

    response = await verify(
        client, challenge["challenge_id"], wrap(factory, calldata, sign(challenge["message"], OWNER_KEY))
    )

    assert response.status == 200, response.text
    assert response.json()["wallet_address"] == account.lower()
    assert await stored(services, challenge["challenge_id"]) == ("VERIFIED", "EIP1271")
    # Exactly one call: eth_call with no `to` (a simulated deployment) carrying the validator and its arguments.
    assert [request["method"] for request in forwarded] == ["eth_call"]
    (transaction, tag) = forwarded[0]["params"]
    assert set(transaction) == {"data"} and tag == "latest"
    data = bytes.fromhex(transaction["data"][2:])
    assert data.startswith(VALIDATE_SIG_OFFCHAIN_BYTECODE)
    assert data[len(VALIDATE_SIG_OFFCHAIN_BYTECODE) :] == encode(
        ["address", "bytes32", "bytes"],
        [
            account,
            eip191_message_hash(challenge["message"]),
            bytes.fromhex(wrap(factory, calldata, sign(challenge["message"], OWNER_KEY))[2:]),
        ],
    )
    # Nothing was deployed and no transaction was sent: the account is still counterfactual.
    assert anvil.rpc("eth_getCode", [account, "latest"]) == "0x"
    assert anvil.rpc("eth_blockNumber") == block
    logged = [record for record in log_sink.records() if "wallet_verified" in record.values()]
    assert logged[-1]["signature_scheme"] == "ERC6492"


async def test_deployed_account_verifies_via_eip1271(on_anvil, chain, client, services, factory):
    account, calldata = counterfactual(chain, factory)
    owner = address_of(OWNER_KEY)
    salt = calldata[-32:]
    transact(chain, factory, "createAccount", [owner, salt], contract="SmartAccountFactory")
    assert chain.rpc("eth_getCode", [account, "latest"]) != "0x"

    plain = await create(client, chain_id=LOCAL, wallet_address=account)
    response = await verify(client, plain["challenge_id"], sign(plain["message"], OWNER_KEY))
    assert response.status == 200, response.text
    assert await stored(services, plain["challenge_id"]) == ("VERIFIED", "EIP1271")

    # A signature wrapped before deployment stays valid: the validator then asks the deployed account.
    wrapped = await create(client, chain_id=LOCAL, wallet_address=account)
    response = await verify(
        client, wrapped["challenge_id"], wrap(factory, calldata, sign(wrapped["message"], OWNER_KEY))
    )
    assert response.status == 200, response.text


async def test_wrong_signer_of_a_counterfactual_account_is_e1006(on_anvil, anvil, client, services, factory):
    account, calldata = counterfactual(anvil, factory)
    challenge = await create(client, chain_id=LOCAL, wallet_address=account)

    response = await verify(
        client, challenge["challenge_id"], wrap(factory, calldata, sign(challenge["message"], STRANGER_KEY))
    )

    assert (response.status, response.error_code) == (400, "E1006"), response.text
    assert response.json()["error"]["details"] == {
        "expected": account.lower(),
        "recovered": address_of(STRANGER_KEY).lower(),
    }
    assert await stored(services, challenge["challenge_id"]) == ("PENDING", None)


async def test_a_factory_call_that_deploys_another_account_is_refused(on_anvil, anvil, client, factory):
    """The validator asks the challenge's address, whatever the wrapper deploys (here Bob's account)."""
    account, _ = counterfactual(anvil, factory)
    _, bobs_calldata = counterfactual(anvil, factory, STRANGER_KEY)
    challenge = await create(client, chain_id=LOCAL, wallet_address=account)

    response = await verify(
        client, challenge["challenge_id"], wrap(factory, bobs_calldata, sign(challenge["message"], STRANGER_KEY))
    )

    assert response.error_code == "E1006", response.text


async def test_a_signature_for_another_message_is_refused(on_anvil, anvil, client, factory):
    account, calldata = counterfactual(anvil, factory)
    first = await create(client, chain_id=LOCAL, wallet_address=account)
    second = await create(client, chain_id=LOCAL, wallet_address=account)
    response = await verify(client, second["challenge_id"], wrap(factory, calldata, sign(first["message"], OWNER_KEY)))
    assert response.error_code == "E1006"


@pytest.mark.parametrize(
    "mangle",
    [
        pytest.param(lambda wrapped: "0x" + erc6492.MAGIC_SUFFIX.hex(), id="suffix-only"),
        pytest.param(lambda wrapped: "0x" + wrapped[2:66] + "ff" * 32 + wrapped[130:], id="offset-out-of-range"),
        pytest.param(lambda wrapped: "0x" + "ff" * 12 + wrapped[26:], id="dirty-address"),
    ],
)
async def test_a_malformed_wrapper_is_e1008_without_rpc(client, httpx_mock, mangle):
    challenge = await create(client)
    wrapped = wrap("0x" + "11" * 20, b"\x01\x02", sign(challenge["message"], OWNER_KEY))

    response = await verify(client, challenge["challenge_id"], mangle(wrapped))

    assert response.error_code == "E1008", response.text
    assert "ERC-6492" in response.json()["error"]["details"]["reason"]
    assert rpc_methods(httpx_mock) == []


async def test_validator_outage_is_502(client, httpx_mock):
    httpx_mock.add_response(url=RPC_URL, status_code=503, is_reusable=True)
    challenge = await create(client)
    response = await verify(
        client, challenge["challenge_id"], wrap("0x" + "11" * 20, b"", sign(challenge["message"], OWNER_KEY))
    )
    assert (response.status, response.error_code) == (502, "E2004")


# --- the module against the real validator, and its encoding ----------------------------------------------


async def test_is_valid_signature_against_the_reference_validator(anvil, factory):
    account, calldata = counterfactual(anvil, factory)
    message = "TattleHash Gatekeeper — wallet ownership"
    digest = eip191_message_hash(message)
    async with httpx.AsyncClient() as http:
        client = JsonRpcClient([anvil.url], http=http)
        good = bytes.fromhex(wrap(factory, calldata, sign(message, OWNER_KEY))[2:])
        bad = bytes.fromhex(wrap(factory, calldata, sign(message, STRANGER_KEY))[2:])
        assert await erc6492.is_valid_signature(client, account.lower(), digest, good) is True
        assert await erc6492.is_valid_signature(client, account.lower(), digest, bad) is False
        # A factory that is no contract deploys nothing: the validator reverts, which is a refusal.
        nowhere = bytes.fromhex(wrap("0x" + "11" * 20, calldata, sign(message, OWNER_KEY))[2:])
        assert await erc6492.is_valid_signature(client, account.lower(), digest, nowhere) is False


def test_the_validator_constant_is_the_committed_build_of_the_ercs_reference():
    artifact = load_artifact("ValidateSigOffchain")
    assert bytes.fromhex(artifact["bytecode"][2:]) == VALIDATE_SIG_OFFCHAIN_BYTECODE
    assert artifact["compiler"] == "solc 0.8.26"
    source = (FIXTURES / "ValidateSigOffchain.sol").read_text()
    for line in (
        "contract ValidateSigOffchain {",
        "    bool isValidSig = validator.isValidSigWithSideEffects(_signer, _hash, _signature);",
        "  bytes32 private constant ERC6492_DETECTION_SUFFIX = "
        "0x6492649264926492649264926492649264926492649264926492649264926492;",
    ):
        assert line in source.splitlines()


# A real wallet's counterfactual SIWE signature (spruceid/siwe test/eip1271.json, "6492"): 384 bytes.
SPRUCE_6492 = bytes.fromhex(
    "0000000000000000000000003e9fcff3e490881855cbe07f23a674e91d163894"
    "0000000000000000000000000000000000000000000000000000000000000060"
    "00000000000000000000000000000000000000000000000000000000000000e0"
    "0000000000000000000000000000000000000000000000000000000000000044"
    "5fbfb9cf0000000000000000000000005ecffd14580b044bce27cce527b55c4f"
    "4a1f8fd900000000000000000000000000000000000000000000000000000000"
    "0000000000000000000000000000000000000000000000000000000000000000"
    "0000000000000000000000000000000000000000000000000000000000000041"
    "e51c945ee81a90992bd1ceddcafc1b61deea1baab169c762b48981f56d098cd0"
    "2a69b0299f56362fdcade99d0e4c2a6620cd13c606d9bea1e3e1bda5282b859a"
    "1c00000000000000000000000000000000000000000000000000000000000000"
    "6492649264926492649264926492649264926492649264926492649264926492"
)


def test_unwrap_reads_a_real_wallets_wrapper():
    assert erc6492.is_wrapped(SPRUCE_6492)
    unwrapped = erc6492.unwrap(SPRUCE_6492)
    assert unwrapped.factory == "0x3e9fcff3e490881855cbe07f23a674e91d163894"
    assert unwrapped.factory_calldata[:4] == bytes.fromhex("5fbfb9cf") and len(unwrapped.factory_calldata) == 68
    assert len(unwrapped.signature) == 65 and unwrapped.signature[-1] == 0x1C


def _non_canonical(factory: bytes, calldata: bytes, inner: bytes) -> bytes:
    """Tails in reverse order with junk padding: Solidity's decoder accepts it, so must we."""

    def tail(value: bytes) -> bytes:
        return len(value).to_bytes(32, "big") + value + b"\xee" * (-len(value) % 32)

    second = tail(inner)
    head = bytes(12) + factory + (96 + len(second)).to_bytes(32, "big") + (96).to_bytes(32, "big")
    return head + second + tail(calldata) + erc6492.MAGIC_SUFFIX


@pytest.mark.parametrize(
    ("build", "ok"),
    [
        (lambda: _non_canonical(b"\x22" * 20, b"\x01\x02\x03", b"\x04" * 65), True),
        (lambda: encode(["address", "bytes", "bytes"], ["0x" + "22" * 20, b"", b""]) + erc6492.MAGIC_SUFFIX, True),
        (lambda: bytes(95) + erc6492.MAGIC_SUFFIX, False),
        (
            lambda: encode(["address", "bytes", "bytes"], ["0x" + "22" * 20, b"x", b"y"])[:-32] + erc6492.MAGIC_SUFFIX,
            False,
        ),
        (lambda: b"\x00" * 65, False),
    ],
    ids=["non-canonical", "empty-parts", "short-head", "truncated-tail", "no-suffix"],
)
def test_unwrap_is_as_lenient_as_abi_decode_and_no_more(build: Callable[[], bytes], ok: bool):
    data = build()
    if ok:
        unwrapped = erc6492.unwrap(data)
        assert unwrapped.factory == "0x" + "22" * 20
    else:
        with pytest.raises(MalformedSignature):
            erc6492.unwrap(data)


def test_validation_call_data_is_the_abi_encoding():
    digest = bytes(range(32))
    for signature in (b"", b"\x01" * 65, b"\x02" * 200):
        expected = VALIDATE_SIG_OFFCHAIN_BYTECODE + encode(
            ["address", "bytes32", "bytes"], ["0x" + "ab" * 20, digest, signature]
        )
        assert erc6492.encode_validation_call("0x" + "ab" * 20, digest, signature) == expected
    with pytest.raises(ValueError):
        erc6492.encode_validation_call("0x" + "ab" * 20, bytes(31), b"")
