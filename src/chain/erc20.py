"""ERC-20 balanceOf(address): calldata encoding, the eth_call request, and strict decoding of its answer."""

from __future__ import annotations

from chain.address import normalize_address
from chain.hexutil import parse_data, to_data, to_quantity
from chain.rpc import RpcCall

__all__ = [
    "BALANCE_OF_SELECTOR",
    "NotAnErc20Answer",
    "balance_of_call",
    "decode_balance_of",
    "encode_balance_of",
]

# bytes4(keccak256("balanceOf(address)"))
BALANCE_OF_SELECTOR = bytes.fromhex("70a08231")
_WORD = 32


class NotAnErc20Answer(ValueError):
    """The contract answered balanceOf with something that is not an ABI-encoded uint256."""


def encode_balance_of(holder: str) -> bytes:
    """Calldata for balanceOf(holder): the selector, then the address left-padded to one 32-byte word."""
    address = normalize_address(holder, allow_zero=True)
    return BALANCE_OF_SELECTOR + bytes(12) + bytes.fromhex(address[2:])


def decode_balance_of(data: bytes) -> int:
    """The uint256 a balanceOf call returned; raises NotAnErc20Answer for a short or empty answer."""
    # An account without code (or a contract whose fallback returns nothing) answers "0x" without
    # reverting; reading that as 0 would turn "not a token" into a silent FAILED.
    if len(data) < _WORD:
        raise NotAnErc20Answer("balanceOf returned fewer than 32 bytes")
    # Longer answers are tolerated as Solidity's abi.decode (and OpenZeppelin's SafeERC20) do: the
    # first word is the value.
    return int.from_bytes(data[:_WORD], "big")


def balance_of_call(token: str, holder: str, block: int) -> RpcCall:
    """eth_call of token.balanceOf(holder) at a block number; the result stays raw bytes (see decode_balance_of).

    The result is not decoded inside the RPC client on purpose: a decode failure there counts as a
    malformed node answer and is retried, whereas a short answer here is the token's fault.
    """
    contract = normalize_address(token, allow_zero=True)
    call = {"to": contract, "data": to_data(encode_balance_of(holder))}
    return RpcCall("eth_call", [call, to_quantity(block)], decode=parse_data)
