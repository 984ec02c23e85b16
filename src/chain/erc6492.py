"""ERC-6492: signatures of counterfactual (not yet deployed) contract wallets, checked in one deployless eth_call."""

from __future__ import annotations

from dataclasses import dataclass

from chain.erc6492_bytecode import VALIDATE_SIG_OFFCHAIN_BYTECODE
from chain.hexutil import parse_data, to_data
from chain.rpc import JsonRpcClient, RpcCallError
from chain.signatures import MalformedSignature

__all__ = [
    "MAGIC_SUFFIX",
    "Unwrapped",
    "encode_validation_call",
    "is_valid_signature",
    "is_wrapped",
    "unwrap",
]

# The ERC's magicBytes: a wrapped signature ends with them (0x92 is no ECDSA v, so no r||s||v can end so).
MAGIC_SUFFIX = bytes.fromhex("64926492649264926492649264926492" * 2)
_WORD = 32
_VALID = b"\x01"


@dataclass(frozen=True)
class Unwrapped:
    """The parts of concat(abi.encode((factory, factoryCalldata, signature)), magicBytes)."""

    factory: str  # lowercase 0x address the validator calls first (to deploy or prepare the account)
    factory_calldata: bytes
    signature: bytes  # the account's own EIP-1271 signature


def is_wrapped(signature: bytes) -> bool:
    """Whether the signature ends with the ERC-6492 magic suffix (then only the ERC's validator may judge it)."""
    return len(signature) >= len(MAGIC_SUFFIX) and signature.endswith(MAGIC_SUFFIX)


def _word(data: bytes, at: int) -> int:
    if at < 0 or at + _WORD > len(data):
        raise MalformedSignature("ERC-6492 wrapper is truncated")
    return int.from_bytes(data[at : at + _WORD], "big")


def _dynamic_bytes(data: bytes, offset: int) -> bytes:
    length = _word(data, offset)
    start = offset + _WORD
    if length > len(data) - start:
        raise MalformedSignature("ERC-6492 wrapper is truncated")
    return data[start : start + length]


def unwrap(signature: bytes) -> Unwrapped:
    """Decode a wrapped signature the way the validator's abi.decode(..., (address, bytes, bytes)) does.

    As lenient as Solidity's decoder and no more strict: offsets need not be canonical nor padding zero, but every
    offset and length must stay inside the data and the address word must hold 160 bits, else MalformedSignature.
    """
    if not is_wrapped(signature):
        raise MalformedSignature("signature does not end with the ERC-6492 magic suffix")
    data = signature[: -len(MAGIC_SUFFIX)]
    if len(data) < 3 * _WORD:
        raise MalformedSignature("ERC-6492 wrapper is truncated")
    factory = _word(data, 0)
    if factory >> 160:
        raise MalformedSignature("ERC-6492 factory is not an address")
    calldata = _dynamic_bytes(data, _word(data, _WORD))
    inner = _dynamic_bytes(data, _word(data, 2 * _WORD))
    return Unwrapped("0x" + factory.to_bytes(20, "big").hex(), calldata, inner)


def _encode_bytes(value: bytes) -> bytes:
    return len(value).to_bytes(_WORD, "big") + value + bytes(-len(value) % _WORD)


def encode_validation_call(signer: str, message_hash: bytes, signature: bytes) -> bytes:
    """The eth_call data: the validator's creation code + abi.encode(address signer, bytes32 hash, bytes signature)."""
    if len(message_hash) != _WORD:
        raise ValueError("message hash must be 32 bytes")
    address = bytes.fromhex(signer.removeprefix("0x"))
    if len(address) != 20:
        raise ValueError("signer must be a 20-byte address")
    head = bytes(12) + address + bytes(message_hash) + (3 * _WORD).to_bytes(_WORD, "big")
    return VALIDATE_SIG_OFFCHAIN_BYTECODE + head + _encode_bytes(signature)


async def is_valid_signature(
    client: JsonRpcClient,
    signer: str,
    message_hash: bytes,
    signature: bytes,
    block: int | str = "latest",
) -> bool:
    """The ERC's off-chain verification: one eth_call with no `to` (a simulated deployment, never a transaction).

    The validator deploys the account through the wrapper's factory call if it has no code yet, then asks its
    isValidSignature; it answers 0x01 for valid. A revert (the factory call failed, the account reverted) is a
    refusal; RpcUnavailable propagates (an outage is not a verdict).
    """
    data = encode_validation_call(signer, message_hash, signature)
    tag = block if isinstance(block, str) else hex(block)
    try:
        result = await client.call("eth_call", [{"data": to_data(data)}, tag], decode=parse_data)
    except RpcCallError:
        return False
    return bytes(result) == _VALID
