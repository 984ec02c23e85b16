"""Reads pinned to one block, done per endpoint: that endpoint's chain id checked, its own head, its own batch.

One provider's head never pins another provider's read: a head from endpoint A is only ever used in a batch
sent to A. Per endpoint, with the isolate's memory (chain.blockcache.BlockCache):

* chain id unknown: ``[eth_chainId, eth_blockNumber]`` (one request), then the batch at that head: 2 requests.
  The id is remembered, so this costs one request once per endpoint and isolate; an endpoint on another
  chain is left out of every request (until CHAIN_ID_RECHECK_SECONDS pass).
* chain id known, no recent head: ``eth_blockNumber``, then the batch: 2 requests.
* chain id known, head seen within `max_age`: the batch alone, 1 request.

The batch starts with ``eth_blockNumber`` so the head stays fresh for the next read. An answer saying the
endpoint lacks the block (a remembered head it no longer or not yet has) re-reads its head once; a fresh
head it cannot read at moves on to the next endpoint, as any other failure does.

An endpoint that takes fewer calls per batch (it refused one as too large; the isolate remembers its limit,
chain.batchlimits) gets the batch in parts, one after another on that same endpoint, each naming the same
block: more requests, the same answer, in the caller's order. The counts above hold for every other endpoint.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from chain.blockcache import BlockCache
from chain.hexutil import parse_quantity
from chain.rpc import AttemptFailed, Endpoint, JsonRpcClient, Outcome, RpcCall, RpcCallError

__all__ = ["MAX_BLOCK_NUMBER", "PinnedAnswer", "read_pinned"]

# Block numbers travel through JS doubles (D1 bindings, JSON in browsers): beyond 2^53 a node is broken.
MAX_BLOCK_NUMBER = 2**53 - 1

WrongChainHook = Callable[[str, int], None]


@dataclass(frozen=True)
class PinnedAnswer:
    """The results of the caller's calls, all read at `block` on the endpoint at `host`."""

    block: int
    host: str
    results: list[Any]


def _block_number(value: Any) -> int:
    number = parse_quantity(value)
    if number > MAX_BLOCK_NUMBER:
        raise ValueError("block number out of range")
    return number


_HEAD = RpcCall("eth_blockNumber", [], decode=_block_number)


async def read_pinned(
    client: JsonRpcClient,
    build: Callable[[int], Sequence[RpcCall]],
    *,
    chain_id: int,
    memory: BlockCache | None,
    now: float,
    max_age: float,
    on_wrong_chain: WrongChainHook | None = None,
) -> PinnedAnswer:
    """`build(block)` gives the calls, every one naming `block`; they run as one batch on one endpoint.

    One batch, or its parts on that same endpoint when it limits batch size (JsonRpcClient splits it there).

    Failover, health order, hedging and retries are the client's (JsonRpcClient.each_endpoint). A
    deterministic error (a revert) raises RpcCallError with `index` into `build`'s calls.
    """

    def elsewhere(url: str) -> bool:
        known = memory.chain_id(url, chain_id, now) if memory is not None else None
        return known is not None and known != chain_id

    async def head(endpoint: Endpoint, *, verified: bool) -> int:
        try:
            if verified:
                block: int = await endpoint.call("eth_blockNumber", [], decode=_block_number)
                return block
            seen, block = await endpoint.batch([RpcCall("eth_chainId", [], decode=parse_quantity), _HEAD])
        except RpcCallError:
            # A node that "deterministically" refuses eth_chainId or eth_blockNumber is not one to read from.
            raise AttemptFailed(Outcome.NEXT_ENDPOINT, "head request refused") from None
        if memory is not None:
            memory.remember_chain_id(endpoint.url, seen, now)
        if seen != chain_id:
            if on_wrong_chain is not None:
                on_wrong_chain(endpoint.host, seen)
            # Never attest another chain's state under this network's name: this endpoint is out.
            raise AttemptFailed(Outcome.NEXT_ENDPOINT, "endpoint serves another chain")
        return block

    async def at(endpoint: Endpoint, block: int) -> list[Any]:
        calls = list(build(block))
        try:
            answers = await endpoint.batch([_HEAD, *calls])
        except RpcCallError as error:
            if error.index is None or error.index == 0:
                raise AttemptFailed(Outcome.RETRY, "eth_blockNumber refused") from None
            raise RpcCallError(
                error.code,
                error.message,
                data=error.data,
                index=error.index - 1,
                method=error.method,
                host=error.host,
            ) from None
        if memory is not None:
            memory.remember(endpoint.url, answers[0], now)
        return answers[1:]

    async def operation(endpoint: Endpoint) -> PinnedAnswer:
        verified = memory is not None and memory.chain_id(endpoint.url, chain_id, now) == chain_id
        known = memory.recent(endpoint.url, now, max_age) if memory is not None and verified else None
        if known is None:
            block = await head(endpoint, verified=verified)
            return PinnedAnswer(block, endpoint.host, await at(endpoint, block))
        try:
            return PinnedAnswer(known, endpoint.host, await at(endpoint, known))
        except AttemptFailed as failed:
            if failed.outcome is not Outcome.BLOCK_UNAVAILABLE or memory is None:
                raise
        # The remembered head is unknown to this endpoint (a reset dev chain, a backend behind): its own head.
        memory.forget(endpoint.url)
        block = await head(endpoint, verified=True)
        return PinnedAnswer(block, endpoint.host, await at(endpoint, block))

    return await client.each_endpoint(operation, method="pinned batch", skip=elsewhere)
