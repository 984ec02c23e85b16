"""Issue 15 item 5: a provider refusing a JSON-RPC batch as too large gets it split, never the same batch again.

Every node here is an httpx.MockTransport that refuses any batch over its limit the way a real node or
provider does (geth, erigon, besu, nethermind, jsonrpsee/reth, NodeReal, HTTP 413), so each assertion is an
exact count and shape of the requests the client sent, and the results' order.
"""

from __future__ import annotations

import json
import random
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest

from chain.batchlimits import BatchLimits
from chain.blockcache import BlockCache
from chain.health import EndpointHealth
from chain.hexutil import parse_quantity, to_quantity
from chain.pinned import read_pinned
from chain.rpc import JsonRpcClient, RpcCall, RpcCallError

A = "https://a.test/v2/KEY"
B = "https://b.test/"
BLOCK = 0x4D2
CHAIN_ID = 1
# A batch of 9 to a node taking 3, when the refusal names no limit: 9 and its first half of 5 refused, 5 cut
# into 3 + 2, the second half of 4 pre-split into 2 + 2 with the limit learned meanwhile.
HALVES = [9, 5, 3, 2, 2, 2]
LONE = {"jsonrpc": "2.0", "id": None, "error": {"code": -32600, "message": "batch too large"}}

Refusal = Callable[[list[dict[str, Any]]], tuple[int, Any]]


def lone(error: dict[str, Any], status: int = 200) -> Refusal:
    """One error object for the whole batch (id null), as erigon, besu, nethermind and jsonrpsee send."""
    return lambda calls: (status, {"jsonrpc": "2.0", "id": None, "error": error})


def first_id(error: dict[str, Any]) -> Refusal:
    """geth: a one-item array, the error on the first call's id."""
    return lambda calls: (200, [{"jsonrpc": "2.0", "id": calls[0]["id"], "error": error}])


def each(error: dict[str, Any]) -> Refusal:
    """The same error for every call of the batch (as some gateways do)."""
    return lambda calls: (200, [{"jsonrpc": "2.0", "id": call["id"], "error": error} for call in calls])


def cut_tail(error: dict[str, Any]) -> Refusal:
    """geth's response size limit: the first calls answered, the ones past the limit given an error."""

    def refuse(calls: list[dict[str, Any]]) -> tuple[int, Any]:
        items = [{"jsonrpc": "2.0", "id": call["id"], "result": answer(call)} for call in calls[:1]]
        return 200, items + [{"jsonrpc": "2.0", "id": call["id"], "error": error} for call in calls[1:]]

    return refuse


def answer(call: dict[str, Any]) -> Any:
    """What a healthy node says: the head, the chain id, or an echo of the call's first param."""
    if call["method"] == "eth_blockNumber":
        return to_quantity(BLOCK)
    if call["method"] == "eth_chainId":
        return to_quantity(CHAIN_ID)
    if call["method"] == "revert":
        return None
    return call["params"][0]


class LimitedNode:
    """Refuses any batch of more than `limit` calls with `refusal`; records every request by host."""

    def __init__(self, limit: int | None, refusal: Refusal | None = None, *, shuffle: bool = False) -> None:
        self.limit = limit
        self.refusal = refusal or (lambda calls: (200, LONE))
        self.shuffle = shuffle
        self.revert = {"code": 3, "message": "execution reverted"}  # the answer to a call of method "revert"
        self.requests: list[tuple[str, Any]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        payload = json.loads(request.content)
        self.requests.append((request.url.host, payload))
        if isinstance(payload, list):
            if self.limit is not None and len(payload) > self.limit:
                status, body = self.refusal(payload)
                return httpx.Response(status, json=body)
            items = [self._item(call) for call in payload]
            if self.shuffle:
                random.Random(len(items)).shuffle(items)
            return httpx.Response(200, json=items)
        return httpx.Response(200, json=self._item(payload))

    def _item(self, call: dict[str, Any]) -> dict[str, Any]:
        if call["method"] == "revert":
            return {"jsonrpc": "2.0", "id": call["id"], "error": self.revert}
        return {"jsonrpc": "2.0", "id": call["id"], "result": answer(call)}

    def sizes(self) -> list[int | None]:
        """Per request: the number of calls in its batch, None for a plain (single) request."""
        return [len(payload) if isinstance(payload, list) else None for _, payload in self.requests]

    def hosts(self) -> set[str]:
        return {host for host, _ in self.requests}


class Sleeps:
    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


@pytest.fixture
async def make(sleeps: Sleeps) -> AsyncIterator[Callable[..., JsonRpcClient]]:
    opened: list[httpx.AsyncClient] = []

    def build(node: LimitedNode, endpoints: list[str] | None = None, **kwargs: Any) -> JsonRpcClient:
        http = httpx.AsyncClient(transport=httpx.MockTransport(node))
        opened.append(http)
        return JsonRpcClient(endpoints or [A], http=http, sleep=sleeps, **kwargs)

    yield build
    for http in opened:
        await http.aclose()


def echo_calls(count: int) -> list[RpcCall]:
    return [RpcCall("echo", [to_quantity(number)], decode=parse_quantity) for number in range(count)]


# -- splitting --------------------------------------------------------------------------------------------


async def test_a_batch_over_the_limit_is_halved_recursively_then_pre_split(
    make: Callable[..., JsonRpcClient], sleeps: Sleeps
) -> None:
    node = LimitedNode(4, shuffle=True)
    client = make(node)
    assert await client.batch(echo_calls(10)) == list(range(10))
    # 10 refused; halves of 5: the first refused, halved to 3 + 2; the second pre-split to 3 + 2 at once.
    assert node.sizes() == [10, 5, 3, 2, 3, 2]
    assert sleeps.delays == []  # no retry round, no backoff: every part went out at once on the same endpoint
    # The size that passed is remembered: the next batch is split before it is sent, nothing refused.
    node.requests.clear()
    assert await client.batch(echo_calls(10)) == list(range(10))
    assert node.sizes() == [3, 2, 3, 2]
    # A batch within the limit still goes whole, in one request.
    node.requests.clear()
    assert await client.batch(echo_calls(3)) == [0, 1, 2]
    assert node.sizes() == [3]


@pytest.mark.parametrize(
    ("refusal", "sizes"),
    [
        # geth / op-geth (Base): "batch too large", -32600, on the first call's id. No size named: halves.
        (first_id({"code": -32600, "message": "batch too large"}), HALVES),
        # The lone object with a null id (the example).
        (lone({"code": -32600, "message": "batch too large"}), HALVES),
        # erigon before its fix: -32000, which is otherwise retried as transient. It names its limit.
        (lone({"code": -32000, "message": "batch limit 3 exceeded: 9 requests given"}), [9, 3, 3, 3]),
        # besu: -32005, which is also every rate limit; the words tell them apart.
        (lone({"code": -32005, "message": "Number of requests exceeds max batch size"}), HALVES),
        # nethermind.
        (lone({"code": -32005, "message": "Batch size limit exceeded"}), HALVES),
        # jsonrpsee (reth): its own code, the limit in `data`.
        (
            lone({"code": -32010, "message": "The batch request was too large", "data": "Exceeded max limit of 3"}),
            [9, 3, 3, 3],
        ),
        (lone({"code": -32011, "message": "The batch response was too large"}), HALVES),
        # NodeReal MegaNode.
        (lone({"code": -32005, "message": "batch size exceed limit 3"}), [9, 3, 3, 3]),
        # geth's response size limit: the calls past it answered with -32003.
        (cut_tail({"code": -32003, "message": "response too large"}), HALVES),
        # A gateway repeating the refusal for every call.
        (each({"code": -32600, "message": "Exceeded maximum batch size"}), HALVES),
        # A body too large for a proxy in front of the node.
        (lambda calls: (413, {"error": "request entity too large"}), HALVES),
        (lone({"code": -32600, "message": "batch too large"}, status=400), HALVES),
    ],
)
async def test_every_known_batch_limit_answer_splits_the_batch(
    make: Callable[..., JsonRpcClient], refusal: Refusal, sizes: list[int]
) -> None:
    node = LimitedNode(3, refusal)
    client = make(node, [A, B])
    assert await client.batch(echo_calls(9)) == list(range(9))
    assert node.sizes() == sizes
    assert node.hosts() == {"a.test"}  # split on the endpoint that refused it, not failed over
    assert client.last_host == "a.test"


async def test_an_endpoint_refusing_any_batch_gets_plain_requests(make: Callable[..., JsonRpcClient]) -> None:
    node = LimitedNode(0)
    client = make(node)
    assert await client.batch(echo_calls(2)) == [0, 1]
    assert node.sizes() == [2, None, None]
    # Its limit is 1: a batch of one goes as a plain request too, without being refused first.
    node.requests.clear()
    assert await client.batch(echo_calls(1)) == [0]
    assert node.sizes() == [None]


async def test_a_batch_of_one_refused_is_resent_as_a_plain_request(make: Callable[..., JsonRpcClient]) -> None:
    node = LimitedNode(0)
    assert await make(node).batch(echo_calls(1)) == [0]
    assert node.sizes() == [1, None]


async def test_a_revert_in_a_split_batch_reports_the_callers_index(make: Callable[..., JsonRpcClient]) -> None:
    node = LimitedNode(2)
    calls = echo_calls(7)
    calls[5] = RpcCall("revert", [])
    with pytest.raises(RpcCallError) as info:
        await make(node).batch(calls)
    assert (info.value.index, info.value.method, info.value.code) == (5, "revert", 3)
    # A deterministic answer stops the batch: the part after the revert is not sent.
    assert node.sizes() == [7, 4, 2, 2, 2]


async def test_a_revert_alone_in_its_part_has_its_index_too(make: Callable[..., JsonRpcClient]) -> None:
    node = LimitedNode(0)
    calls = [RpcCall("echo", ["0x1"]), RpcCall("revert", [])]
    with pytest.raises(RpcCallError) as info:
        await make(node).batch(calls)
    assert info.value.index == 1
    assert node.sizes() == [2, None, None]


async def test_the_limit_is_remembered_per_isolate_and_per_endpoint(make: Callable[..., JsonRpcClient]) -> None:
    health = EndpointHealth()
    node = LimitedNode(4)
    assert await make(node, health=health).batch(echo_calls(8)) == list(range(8))
    assert node.sizes() == [8, 4, 4]
    assert health.batch_limits.limit(A) == 4 and health.batch_limits.limit(B) is None
    # Another request of the same isolate (a new client, as every funds check builds one): pre-split at once.
    node.requests.clear()
    assert await make(node, health=health).batch(echo_calls(8)) == list(range(8))
    assert node.sizes() == [4, 4]
    # A client without the isolate's memory learns it again; another endpoint is not limited by A's limit.
    node.requests.clear()
    assert await make(node).batch(echo_calls(8)) == list(range(8))
    assert node.sizes() == [8, 4, 4]
    other = LimitedNode(None)
    assert await make(other, [B], health=health).batch(echo_calls(8)) == list(range(8))
    assert other.sizes() == [8]


def test_batch_limits_only_go_down() -> None:
    limits = BatchLimits()
    assert limits.limit(A) is None
    assert limits.lower(A, 10) == 10
    assert limits.lower(A, 20) == 10
    assert limits.lower(A, 0) == 1
    assert limits.limit(A) == 1 and limits.limit(B) is None


# -- what is not a batch limit keeps its meaning, next to one that is ------------------------------------------


class Scripted(LimitedNode):
    """A LimitedNode whose first batches get the given answers instead, in order."""

    def __init__(self, limit: int, first: list[Refusal], refusal: Refusal | None = None) -> None:
        super().__init__(limit, refusal)
        self.first = list(first)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        payload = json.loads(request.content)
        if isinstance(payload, list) and self.first:
            self.requests.append((request.url.host, payload))
            status, body = self.first.pop(0)(payload)
            return httpx.Response(status, json=body)
        return super().__call__(request)


async def test_a_rate_limit_is_retried_whole_and_a_batch_limit_split_both_minus_32005(
    make: Callable[..., JsonRpcClient], sleeps: Sleeps
) -> None:
    limited = lone({"code": -32005, "message": "limit exceeded"})  # BSC's and many providers' rate limit
    node = Scripted(2, [limited], lone({"code": -32005, "message": "Batch size limit exceeded"}))
    assert await make(node).batch(echo_calls(4)) == [0, 1, 2, 3]
    # The rate limit: the same batch again after a backoff. The batch limit: halves at once.
    assert node.sizes() == [4, 4, 2, 2]
    assert len(sleeps.delays) == 1


async def test_batches_not_supported_fail_over_and_the_next_endpoint_splits(
    make: Callable[..., JsonRpcClient],
) -> None:
    refusing = LimitedNode(0, lone({"code": -32600, "message": "batch not supported"}))
    limited = LimitedNode(2)
    nodes = {"a.test": refusing, "b.test": limited}
    http = httpx.AsyncClient(transport=httpx.MockTransport(lambda request: nodes[request.url.host](request)))
    async with http:
        client = JsonRpcClient([A, B], http=http, sleep=Sleeps())
        assert await client.batch(echo_calls(4)) == [0, 1, 2, 3]
    assert (refusing.sizes(), limited.sizes()) == ([4], [4, 2, 2])
    assert client.last_host == "b.test"


async def test_a_batch_missing_answers_without_a_refusal_is_still_retried(
    make: Callable[..., JsonRpcClient], sleeps: Sleeps
) -> None:
    def partial(calls: list[dict[str, Any]]) -> tuple[int, Any]:
        return 200, [{"jsonrpc": "2.0", "id": calls[0]["id"], "result": "0x0"}]

    node = Scripted(2, [partial], first_id({"code": -32600, "message": "batch too large"}))
    assert await make(node).batch(echo_calls(4)) == [0, 1, 2, 3]
    # An answer missing, with no word of a limit: retried whole after a backoff; then refused, so split.
    assert node.sizes() == [4, 4, 2, 2]
    assert len(sleeps.delays) == 1


async def test_a_contract_reverting_with_batch_words_in_a_split_batch_is_a_revert(
    make: Callable[..., JsonRpcClient],
) -> None:
    node = LimitedNode(2)
    # geth's data-less revert, its reason (from some token's own batch function) full of a batch limit's words.
    reverted = {"code": -32000, "message": "execution reverted: Batch size too large"}
    node.revert = reverted
    calls = [*echo_calls(3), RpcCall("revert", [])]
    with pytest.raises(RpcCallError) as info:
        await make(node).batch(calls)
    assert (info.value.index, info.value.code, info.value.message) == (3, -32000, reverted["message"])
    # Split because of the node's limit, never because of the revert's words: the part with it is not split.
    assert node.sizes() == [4, 2, 2]


# -- the funds check's pinned read: one block, one endpoint, every part ---------------------------------------


async def test_a_split_pinned_batch_reads_every_part_at_one_block_on_one_endpoint(
    make: Callable[..., JsonRpcClient],
) -> None:
    node = LimitedNode(3)
    memory = BlockCache()
    client = make(node, [A, B], health=memory.health)
    wallets = ["0x" + f"{number:040x}" for number in range(1, 12)]

    def build(block: int) -> list[RpcCall]:
        return [RpcCall("eth_getBalance", [wallet, to_quantity(block)]) for wallet in wallets]

    answer_ = await read_pinned(client, build, chain_id=CHAIN_ID, memory=memory, now=100.0, max_age=15.0)
    assert (answer_.block, answer_.host) == (BLOCK, "a.test")
    assert answer_.results == wallets  # the caller's order
    assert node.hosts() == {"a.test"}
    # Cold: chain id + head (2 calls, within the limit), then [head, 11 reads] in parts.
    assert node.sizes() == [2, 12, 6, 3, 3, 3, 3]
    reads = [call for _, payload in node.requests[1:] if isinstance(payload, list) for call in payload]
    assert all(call["params"][-1] == to_quantity(BLOCK) for call in reads if call["method"] == "eth_getBalance")
    # Warm: the remembered head pins the read, and the remembered limit splits it before it is sent.
    node.requests.clear()
    again = await read_pinned(client, build, chain_id=CHAIN_ID, memory=memory, now=101.0, max_age=15.0)
    assert (again.block, again.results) == (BLOCK, wallets)
    assert node.sizes() == [3, 3, 3, 3]
