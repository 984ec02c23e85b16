"""Contract wallets over real HTTP in both runtimes (uvicorn and workerd): the Worker reaches anvil on 127.0.0.1.

A Safe-style multisig signs with 130 bytes (EIP-1271, not 65) and a counterfactual smart account with an
ERC-6492 wrapper (one deployless eth_call); the configuration is the end-to-end suites', so workerd reuses
their Worker.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from eth_abi import encode

from chain import erc6492
from local.anvil import AnvilNode
from tests.conftest import use_local_chain_only
from tests.support.contracts import call, deploy, encode_call
from tests.test_wallet_support import CHALLENGE, KEY_ALICE, KEY_BOB, KEY_CAROL, VERIFY, address_of, sign

pytestmark = pytest.mark.slow

LOCAL = "eip155:31337"


@pytest.fixture(autouse=True)
def live_env(env_vars: dict[str, str], anvil: AnvilNode) -> dict[str, str]:
    return use_local_chain_only(env_vars, anvil.url)


@pytest.fixture
def http(live_server: Any) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=live_server.url, timeout=30) as client:
        yield client


def challenge(http: httpx.Client, wallet: str) -> dict[str, Any]:
    created = http.post(CHALLENGE, json={"wallet_address": wallet, "chain_id": LOCAL})
    assert created.status_code == 201, created.text
    body: dict[str, Any] = created.json()
    return body


def test_contract_wallets_verify_in_the_real_runtime(http: httpx.Client, chain: AnvilNode) -> None:
    # A 2-of-3 multisig: Alice's and Bob's signatures concatenated in signer order, 130 bytes.
    multisig = deploy(chain, "MultisigWallet", [address_of(KEY_ALICE), address_of(KEY_BOB), chain.accounts[0]], 2)
    first = challenge(http, multisig)
    ordered = sorted((KEY_ALICE, KEY_BOB), key=lambda key: int(address_of(key), 16))
    signature = "0x" + "".join(sign(first["message"], key)[2:] for key in ordered)
    verified = http.post(VERIFY, json={"challenge_id": first["challenge_id"], "signature": signature})
    assert verified.status_code == 200, verified.text
    assert verified.json()["wallet_address"] == multisig.lower()

    # A counterfactual account of Carol's (the factory is deployed, the account is not).
    factory = deploy(chain, "SmartAccountFactory")
    salt = b"\x07" * 32
    account = call(chain, factory, "accountAddress", [address_of(KEY_CAROL), salt], contract="SmartAccountFactory")
    calldata = bytes.fromhex(
        encode_call("createAccount", [address_of(KEY_CAROL), salt], contract="SmartAccountFactory")[2:]
    )

    def wrapped(message: str, key: str) -> str:
        inner = bytes.fromhex(sign(message, key)[2:])
        return "0x" + (encode(["address", "bytes", "bytes"], [factory, calldata, inner]) + erc6492.MAGIC_SUFFIX).hex()

    second = challenge(http, account)
    stranger = http.post(
        VERIFY, json={"challenge_id": second["challenge_id"], "signature": wrapped(second["message"], KEY_BOB)}
    )
    assert (stranger.status_code, stranger.json()["error"]["code"]) == (400, "E1006"), stranger.text
    verified = http.post(
        VERIFY, json={"challenge_id": second["challenge_id"], "signature": wrapped(second["message"], KEY_CAROL)}
    )
    assert verified.status_code == 200, verified.text
    assert verified.json()["wallet_address"] == account.lower()
    assert chain.rpc("eth_getCode", [account, "latest"]) == "0x"  # verified, still not deployed
