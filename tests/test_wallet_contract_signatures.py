"""EIP-1271 signatures of any length on a real chain: Safe-style multisig, the empty signature, Loopring's 66 bytes.

The contracts are the compiled fixtures (tests/fixtures/contracts/); every owner signature is personal_sign by
eth-account, as the owners' wallets make them. The service must hand the bytes to isValidSignature unchanged.
"""

from __future__ import annotations

import pytest

from chain.signatures import eip191_message_hash
from local.anvil import AnvilNode
from tests.support.contracts import call, deploy, transact
from tests.test_wallet_support import (
    KEY_ALICE,
    KEY_BOB,
    KEY_CAROL,
    address_of,
    create,
    sign,
    verify,
    wallet_env,  # noqa: F401 (autouse fixture)
)

LOCAL = "eip155:31337"


@pytest.fixture
def on_anvil(env_vars: dict[str, str], anvil: AnvilNode) -> AnvilNode:
    """Request before `client`: points the `local` network (eip155:31337) at the test chain."""
    env_vars["RPC_URL_LOCAL"] = anvil.url
    return anvil


@pytest.fixture(scope="module")
def multisig(anvil: AnvilNode) -> str:
    """A 2-of-3 MultisigWallet: Alice and Bob sign off chain; anvil's first dev account approves on chain."""
    owners = [address_of(KEY_ALICE), address_of(KEY_BOB), anvil.accounts[0]]
    return deploy(anvil, "MultisigWallet", owners, 2)


@pytest.fixture(scope="module")
def typed_wallet(anvil: AnvilNode) -> str:
    """A Loopring-style TypedSignatureWallet owned by Alice (66-byte signatures: r||s||v||type)."""
    return deploy(anvil, "TypedSignatureWallet", address_of(KEY_ALICE))


def concatenated(message: str, *keys: str) -> str:
    """The owners' signatures joined in ascending signer order, as a Safe wants them."""
    ordered = sorted(keys, key=lambda key: int(address_of(key), 16))
    return "0x" + "".join(sign(message, key)[2:] for key in ordered)


async def signature_type(services, challenge_id: str) -> str:
    sql = "SELECT status, signature_type FROM wallet_challenges WHERE id = ?"
    row = await services.db.prepare(sql).bind(challenge_id).first()
    return f"{row['status']}/{row['signature_type']}"


async def test_two_owners_concatenated_signatures_verify_a_multisig(on_anvil, client, services, multisig):
    challenge = await create(client, chain_id=LOCAL, wallet_address=multisig)
    signature = concatenated(challenge["message"], KEY_ALICE, KEY_BOB)
    assert len(signature) == 2 + 2 * 130

    response = await verify(client, challenge["challenge_id"], signature)

    assert response.status == 200, response.text
    assert response.json()["wallet_address"] == multisig.lower()
    assert await signature_type(services, challenge["challenge_id"]) == "VERIFIED/EIP1271"


async def test_multisig_refuses_owners_out_of_order_a_stranger_or_one_owner(on_anvil, client, multisig):
    challenge = await create(client, chain_id=LOCAL, wallet_address=multisig)
    ordered = sorted((KEY_ALICE, KEY_BOB), key=lambda key: int(address_of(key), 16))
    reversed_order = "0x" + "".join(sign(challenge["message"], key)[2:] for key in reversed(ordered))
    with_stranger = concatenated(challenge["message"], KEY_ALICE, KEY_CAROL)

    for signature in (reversed_order, with_stranger):
        response = await verify(client, challenge["challenge_id"], signature)
        assert (response.status, response.error_code) == (400, "E1005"), response.text
        assert "refused" in response.json()["error"]["message"]
    # One owner is no quorum: the contract refuses, and the signer is named.
    response = await verify(client, challenge["challenge_id"], sign(challenge["message"], KEY_ALICE))
    assert response.error_code == "E1006"
    assert response.json()["error"]["details"] == {
        "expected": multisig.lower(),
        "recovered": address_of(KEY_ALICE).lower(),
    }


async def test_empty_signature_verifies_a_message_approved_on_chain(on_anvil, chain, client, services, multisig):
    challenge = await create(client, chain_id=LOCAL, wallet_address=multisig)
    refused = await verify(client, challenge["challenge_id"], "0x")
    assert refused.error_code == "E1005", refused.text

    transact(chain, multisig, "approveHash", [eip191_message_hash(challenge["message"])], contract="MultisigWallet")
    assert call(
        chain, multisig, "approvedHashes", [eip191_message_hash(challenge["message"])], contract="MultisigWallet"
    )

    response = await verify(client, challenge["challenge_id"], "0x")
    assert response.status == 200, response.text
    assert await signature_type(services, challenge["challenge_id"]) == "VERIFIED/EIP1271"


async def test_loopring_style_66_byte_signature_verifies(on_anvil, client, services, typed_wallet):
    challenge = await create(client, chain_id=LOCAL, wallet_address=typed_wallet)
    owner_signature = sign(challenge["message"], KEY_ALICE)

    wrong_type = await verify(client, challenge["challenge_id"], owner_signature + "03")
    assert wrong_type.error_code == "E1005", wrong_type.text
    response = await verify(client, challenge["challenge_id"], owner_signature + "02")

    assert response.status == 200, response.text
    assert await signature_type(services, challenge["challenge_id"]) == "VERIFIED/EIP1271"


async def test_a_wallet_without_code_still_needs_an_ecdsa_signature(on_anvil, client):
    challenge = await create(client, chain_id=LOCAL, key=KEY_BOB)
    response = await verify(client, challenge["challenge_id"], sign(challenge["message"], KEY_BOB) + "02")
    assert response.error_code == "E1008"
    assert response.json()["error"]["details"]["reason"] == (
        "signature must be 65 bytes (or 64 bytes EIP-2098 compact), not 66 (the wallet has no contract code)"
    )
