"""Chainlink-style price feeds: `latestRoundData()` read through the JSON-RPC client and decoded."""

from __future__ import annotations

from dataclasses import dataclass

from chain.rpc import JsonRpcClient

# keccak256("latestRoundData()")[:4]
LATEST_ROUND_DATA = bytes.fromhex("feaf968c")
_WORD = 32


class MalformedFeedAnswer(ValueError):
    """The feed returned something that is not latestRoundData's five words."""


@dataclass(frozen=True)
class RoundData:
    round_id: int
    answer: int
    started_at: int
    updated_at: int
    answered_in_round: int


def decode_round(data: bytes) -> RoundData:
    if len(data) < 5 * _WORD:
        raise MalformedFeedAnswer(f"expected 160 bytes, got {len(data)}")
    words = [int.from_bytes(data[index * _WORD : (index + 1) * _WORD], "big") for index in range(5)]
    answer = words[1] - 2**256 if words[1] >= 2**255 else words[1]  # int256, two's complement
    return RoundData(words[0], answer, words[2], words[3], words[4])


async def latest_round(client: JsonRpcClient, feed_address: str) -> RoundData:
    return decode_round(await client.eth_call(feed_address, LATEST_ROUND_DATA, "latest"))
