"""EIP-1271: ask a smart-contract wallet whether it accepts a signature over a hash."""

from __future__ import annotations

from chain.rpc import JsonRpcClient, RpcCallError

__all__ = [
    "IS_VALID_SIGNATURE_SELECTOR",
    "MAGIC_VALUE",
    "contract_verdict",
    "encode_is_valid_signature",
    "has_code",
    "is_valid_signature",
]

# bytes4(keccak256("isValidSignature(bytes32,bytes)")): the selector doubles as the success value.
IS_VALID_SIGNATURE_SELECTOR = bytes.fromhex("1626ba7e")
MAGIC_VALUE = IS_VALID_SIGNATURE_SELECTOR
# An ABI-encoded bytes4 return: the value left-aligned in one 32-byte word.
_MAGIC_WORD = MAGIC_VALUE + bytes(28)


def encode_is_valid_signature(message_hash: bytes, signature: bytes) -> bytes:
    """Calldata for isValidSignature(bytes32 hash, bytes signature)."""
    if len(message_hash) != 32:
        raise ValueError("message hash must be 32 bytes")
    padding = bytes(-len(signature) % 32)
    # Head: the hash, then the offset of the dynamic `bytes` argument (two words in); tail: length + data.
    return (
        IS_VALID_SIGNATURE_SELECTOR
        + bytes(message_hash)
        + (64).to_bytes(32, "big")
        + len(signature).to_bytes(32, "big")
        + bytes(signature)
        + padding
    )


async def has_code(client: JsonRpcClient, address: str, block: int | str = "latest") -> bool:
    """Whether `address` holds contract code (eth_getCode is not "0x")."""
    return len(await client.get_code(address, block)) > 0


async def contract_verdict(
    client: JsonRpcClient,
    address: str,
    message_hash: bytes,
    signature: bytes,
    block: int | str = "latest",
) -> bool | None:
    """None when `address` has no code; else whether its isValidSignature returns the magic value.

    `signature` reaches the contract exactly as given: any length, no re-encoding (a Safe's concatenated owner
    signatures, the empty signature of an on-chain approved message, Loopring's 66 bytes...). A revert or any
    other return value is a refusal. RpcUnavailable (the node could not be reached or answered nonsense)
    propagates: that is an outage, not a verdict on the signature.
    """
    if not await has_code(client, address, block):
        return None
    try:
        result = await client.eth_call(address, encode_is_valid_signature(message_hash, signature), block)
    except RpcCallError:
        return False
    # Compare the whole word, as OpenZeppelin's SignatureChecker does: a contract without the function
    # but with a fallback could otherwise return arbitrary bytes that merely start with the magic value.
    return len(result) >= 32 and result[:32] == _MAGIC_WORD


async def is_valid_signature(
    client: JsonRpcClient,
    address: str,
    message_hash: bytes,
    signature: bytes,
    block: int | str = "latest",
) -> bool:
    """True when `address` has code and its isValidSignature returns the magic value (see contract_verdict)."""
    return await contract_verdict(client, address, message_hash, signature, block) is True
