"""Issue 14 item 3: per-isolate endpoint health (circuit breaker, health order) and hedged attempts.

Deterministic: time is a virtual clock the test moves (the client's `sleep` and `clock`), and each fake
endpoint answers, fails or stalls as told, so every assertion is a count of requests per endpoint.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import json
from collections import Counter
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest

from chain.health import BreakerState, EndpointHealth
from chain.rpc import JsonRpcClient, RpcUnavailable

A = "http://a.test/KEY"
B = "http://b.test/"
C = "http://c.test/"
HEDGE = 0.075


class VirtualTime:
    """A clock and a sleep that only move when the test says so."""

    def __init__(self) -> None:
        self.now = 1_000.0
        self.sleeps: list[float] = []
        self._timers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._order = itertools.count()

    def clock(self) -> float:
        return self.now

    async def sleep(self, delay: float) -> None:
        self.sleeps.append(delay)
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._timers, (self.now + delay, next(self._order), future))
        await future

    async def advance(self, seconds: float) -> None:
        """Move time on, waking every sleep due by then, and let the woken work run."""
        self.now += seconds
        while self._timers and self._timers[0][0] <= self.now:
            _, _, future = heapq.heappop(self._timers)
            if not future.done():
                future.set_result(None)
        await settle()


async def settle() -> None:
    # In-memory transport, no real I/O: a bounded number of loop turns runs everything that is ready.
    for _ in range(50):
        await asyncio.sleep(0)


class Endpoints:
    """Fake nodes keyed by host: "ok", "down" (connection refused), "500", or "stall" (until released)."""

    def __init__(self) -> None:
        self.behaviour: dict[str, str] = {}
        self.requests: Counter[str] = Counter()
        self.cancelled: Counter[str] = Counter()
        self.release = asyncio.Event()

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        host = request.url.host
        self.requests[host] += 1
        behaviour = self.behaviour.get(host, "ok")
        if behaviour == "down":
            raise httpx.ConnectError("connection refused", request=request)
        if behaviour == "500":
            return httpx.Response(500, text="busy")
        if behaviour == "stall":
            try:
                await self.release.wait()
            except asyncio.CancelledError:
                self.cancelled[host] += 1
                raise
        payload = json.loads(request.content)
        return httpx.Response(200, json={"jsonrpc": "2.0", "id": payload["id"], "result": f"0x{len(host):x}"})

    def counts(self) -> dict[str, int]:
        return {host: self.requests[host] for host in ("a.test", "b.test", "c.test") if self.requests[host]}


@pytest.fixture
def time_() -> VirtualTime:
    return VirtualTime()


@pytest.fixture
def nodes() -> Endpoints:
    return Endpoints()


@pytest.fixture
async def http(nodes: Endpoints) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.MockTransport(nodes)) as client:
        yield client


@pytest.fixture
def health() -> EndpointHealth:
    return EndpointHealth(failure_threshold=3, cooldown=10.0)


@pytest.fixture
def make_client(http: httpx.AsyncClient, time_: VirtualTime, health: EndpointHealth) -> Callable[..., JsonRpcClient]:
    def make(endpoints: list[str] | None = None, **kwargs: Any) -> JsonRpcClient:
        options: dict[str, Any] = {"health": health, "hedge_delay": HEDGE, "retries": 0, **kwargs}
        return JsonRpcClient(endpoints or [A, B], http=http, sleep=time_.sleep, clock=time_.clock, **options)

    return make


# -- the breaker alone ---------------------------------------------------------------------------------


def test_consecutive_failures_open_the_breaker_and_a_probe_closes_it() -> None:
    health = EndpointHealth(failure_threshold=3, cooldown=10.0)
    for second in range(2):
        health.failed(A, 100.0 + second)
    assert health.state(A, 102.0) is BreakerState.CLOSED
    health.failed(A, 102.0)
    assert health.state(A, 102.0) is BreakerState.OPEN
    assert health.order([A, B], 105.0) == [B, A]
    assert not health.healthy(A, 105.0)
    # Cool-down over: half-open, and back in its configured place for the probe.
    assert health.state(A, 112.0) is BreakerState.HALF_OPEN
    assert health.order([A, B], 112.0) == [A, B]
    health.started(A, 112.0)
    # While the probe runs, every other request keeps away from it.
    assert health.order([A, B], 112.0) == [B, A]
    assert not health.healthy(A, 112.0)
    health.succeeded(A, 112.5)
    assert health.state(A, 112.5) is BreakerState.CLOSED
    assert health.order([A, B], 112.5) == [A, B]


def test_a_failed_probe_opens_the_breaker_for_another_cool_down() -> None:
    health = EndpointHealth(failure_threshold=2, cooldown=10.0)
    health.failed(A, 0.0)
    health.failed(A, 0.0)
    health.started(A, 10.0)
    health.failed(A, 10.0)
    assert health.state(A, 19.0) is BreakerState.OPEN
    assert health.state(A, 20.0) is BreakerState.HALF_OPEN


def test_one_failure_demotes_an_endpoint_until_the_cool_down_passes() -> None:
    health = EndpointHealth(failure_threshold=3, cooldown=10.0)
    health.failed(A, 50.0)
    assert health.state(A, 50.0) is BreakerState.CLOSED
    assert health.order([A, B, C], 55.0) == [B, C, A]
    assert health.healthy(A, 55.0)  # still worth a hedge
    assert health.order([A, B, C], 60.0) == [A, B, C]


def test_an_abandoned_probe_lets_the_next_request_probe() -> None:
    health = EndpointHealth(failure_threshold=1, cooldown=1.0)
    health.failed(A, 0.0)
    health.started(A, 2.0)
    assert health.order([A, B], 2.0) == [B, A]
    health.abandoned(A, 2.0)  # the whole request was cancelled (its deadline): no outcome either way
    assert health.order([A, B], 2.0) == [A, B]
    assert health.healthy(A, 2.0)


# -- the client with health --------------------------------------------------------------------------------


async def test_health_is_remembered_between_requests(
    make_client: Callable[..., JsonRpcClient], nodes: Endpoints, time_: VirtualTime
) -> None:
    """Every request used to start at the first endpoint; now a failing one waits behind the healthy one."""
    nodes.behaviour["a.test"] = "down"
    client = make_client()
    await client.call("eth_chainId", [])
    assert nodes.counts() == {"a.test": 1, "b.test": 1}
    for _ in range(5):
        await client.call("eth_chainId", [])
    assert nodes.counts() == {"a.test": 1, "b.test": 6}  # a new client each time would share the health too
    # After the cool-down the preferred endpoint is tried again: down twice more, its breaker opens.
    for _ in range(2):
        time_.now += 10
        await client.call("eth_chainId", [])
    assert nodes.counts() == {"a.test": 3, "b.test": 8}
    time_.now += 9.9
    other = make_client()  # another request's client, the same isolate's health
    for _ in range(3):
        await other.call("eth_chainId", [])
    assert nodes.counts() == {"a.test": 3, "b.test": 11}
    # Half-open: one probe; it answers, the breaker closes, a is first again.
    nodes.behaviour["a.test"] = "ok"
    time_.now += 0.2
    for _ in range(3):
        await other.call("eth_chainId", [])
    assert nodes.counts() == {"a.test": 6, "b.test": 11}


async def test_only_one_request_probes_a_half_open_endpoint(
    make_client: Callable[..., JsonRpcClient], nodes: Endpoints, time_: VirtualTime, health: EndpointHealth
) -> None:
    for _ in range(3):
        health.failed(A, time_.now)
    time_.now += 10
    nodes.behaviour["a.test"] = "stall"
    client = make_client(hedge_delay=None)
    probe = asyncio.ensure_future(client.call("eth_chainId", []))
    await settle()
    others = [await client.call("eth_chainId", []) for _ in range(4)]
    assert others == ["0x6"] * 4
    assert nodes.counts() == {"a.test": 1, "b.test": 4}
    nodes.release.set()
    assert await probe == "0x6"
    assert health.state(A, time_.now) is BreakerState.CLOSED


async def test_an_open_endpoint_is_still_the_last_resort(
    make_client: Callable[..., JsonRpcClient], nodes: Endpoints, time_: VirtualTime, health: EndpointHealth
) -> None:
    for _ in range(3):
        health.failed(A, time_.now)
    nodes.behaviour["b.test"] = "500"
    assert await make_client().call("eth_chainId", []) == "0x6"
    assert nodes.counts() == {"a.test": 1, "b.test": 1}


async def test_rounds_retry_in_health_order_with_backoff_between_rounds_only(
    make_client: Callable[..., JsonRpcClient], nodes: Endpoints, time_: VirtualTime
) -> None:
    nodes.behaviour.update({"a.test": "500", "b.test": "500"})
    call = asyncio.ensure_future(make_client(retries=2, hedge_delay=None, backoff_base=0.1).call("eth_chainId", []))
    await settle()
    assert nodes.counts() == {"a.test": 1, "b.test": 1}
    await time_.advance(0.11)
    assert nodes.counts() == {"a.test": 2, "b.test": 2}
    await time_.advance(0.22)
    with pytest.raises(RpcUnavailable):
        await call
    assert nodes.counts() == {"a.test": 3, "b.test": 3}
    assert len(time_.sleeps) == 2


# -- hedging -------------------------------------------------------------------------------------------------


async def test_a_slow_first_attempt_is_hedged_to_the_next_endpoint(
    make_client: Callable[..., JsonRpcClient], nodes: Endpoints, time_: VirtualTime, health: EndpointHealth
) -> None:
    nodes.behaviour["a.test"] = "stall"
    client = make_client()
    call = asyncio.ensure_future(client.call("eth_chainId", []))
    await settle()
    await time_.advance(HEDGE / 2)
    assert nodes.counts() == {"a.test": 1}  # not yet
    await time_.advance(HEDGE / 2)
    assert await call == "0x6"  # b's answer
    assert nodes.counts() == {"a.test": 1, "b.test": 1}
    assert nodes.cancelled["a.test"] == 1  # the loser was cancelled, not left running
    assert client.last_host == "b.test"
    assert time_.sleeps == [HEDGE]
    # Losing a hedge counts against a: the next request starts at b.
    assert health.order([A, B], time_.now) == [B, A]
    assert await client.call("eth_chainId", []) == "0x6"
    assert nodes.counts() == {"a.test": 1, "b.test": 2}


async def test_a_first_attempt_that_answers_in_time_is_not_hedged(
    make_client: Callable[..., JsonRpcClient], nodes: Endpoints, time_: VirtualTime
) -> None:
    client = make_client([A, B, C])
    for _ in range(10):
        assert await client.call("eth_chainId", []) == "0x6"
    await time_.advance(1)  # any timer still pending would fire now
    assert nodes.counts() == {"a.test": 10}


async def test_the_first_good_answer_wins_whichever_it_is(
    make_client: Callable[..., JsonRpcClient], nodes: Endpoints, time_: VirtualTime
) -> None:
    nodes.behaviour.update({"a.test": "stall", "b.test": "stall"})
    call = asyncio.ensure_future(make_client([A, B, C]).call("eth_chainId", []))
    await settle()
    await time_.advance(HEDGE)
    assert nodes.counts() == {"a.test": 1, "b.test": 1}
    await time_.advance(HEDGE)  # b is slow too: c gets it
    assert await call == "0x6"
    assert nodes.counts() == {"a.test": 1, "b.test": 1, "c.test": 1}
    assert nodes.cancelled == {"a.test": 1, "b.test": 1}


async def test_a_fast_failure_fails_over_without_waiting_for_the_hedge_delay(
    make_client: Callable[..., JsonRpcClient], nodes: Endpoints, time_: VirtualTime
) -> None:
    nodes.behaviour["a.test"] = "down"
    call = asyncio.ensure_future(make_client().call("eth_chainId", []))
    await settle()
    assert call.done() and call.result() == "0x6"
    assert nodes.counts() == {"a.test": 1, "b.test": 1}


async def test_no_hedge_to_an_endpoint_whose_breaker_is_open(
    make_client: Callable[..., JsonRpcClient], nodes: Endpoints, time_: VirtualTime, health: EndpointHealth
) -> None:
    for _ in range(3):
        health.failed(B, time_.now)
    nodes.behaviour["a.test"] = "stall"
    call = asyncio.ensure_future(make_client().call("eth_chainId", []))
    await settle()
    await time_.advance(1)
    assert nodes.counts() == {"a.test": 1}
    nodes.release.set()
    assert await call == "0x6"
    assert nodes.counts() == {"a.test": 1}


async def test_an_attempt_that_keeps_answering_is_not_hedged(
    http: httpx.AsyncClient, nodes: Endpoints, time_: VirtualTime, health: EndpointHealth
) -> None:
    """A multi-request operation on one endpoint (head, then batch) is hedged only when it goes quiet."""
    client = JsonRpcClient([A, B], http=http, sleep=time_.sleep, clock=time_.clock, health=health, hedge_delay=HEDGE)
    step = asyncio.Event()

    async def two_requests(endpoint: Any) -> str:
        await endpoint.call("eth_blockNumber", [])
        await step.wait()  # between its two requests, as long as the test likes
        result: str = await endpoint.call("eth_chainId", [])
        return result

    run = asyncio.ensure_future(client.each_endpoint(two_requests, method="two"))
    await settle()
    await time_.advance(HEDGE)  # an answer arrived within the delay: the timer starts over
    assert nodes.counts() == {"a.test": 1}
    await time_.advance(HEDGE)  # quiet for a whole delay: hedged
    assert nodes.counts() == {"a.test": 1, "b.test": 1}
    step.set()
    assert await run == "0x6"
