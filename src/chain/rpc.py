"""An Ethereum JSON-RPC client over async httpx: timeouts, retries, health-ordered failover, hedging, batch limits."""

from __future__ import annotations

import asyncio
import enum
import itertools
import json
import logging
import math
import random
import re
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar, cast

import httpx

from chain.batchlimits import BatchLimits
from chain.health import EndpointHealth
from chain.hexutil import MalformedValue, parse_data, parse_quantity, to_data, to_quantity
from chain.networks import endpoint_host

__all__ = [
    "AttemptFailed",
    "Endpoint",
    "JsonRpcClient",
    "MalformedValue",
    "Outcome",
    "RpcCall",
    "RpcCallError",
    "RpcError",
    "RpcUnavailable",
    "parse_data",
    "parse_quantity",
    "to_data",
    "to_quantity",
]

logger = logging.getLogger(__name__)

_MESSAGE_MAX = 200
_DATA_MAX = 2048
_BLOCK_TAGS = frozenset({"latest", "earliest", "pending", "safe", "finalized"})
_ADDRESS_RE = re.compile(r"0x[0-9a-fA-F]{40}")
_EVM_FAILURES = ("revert", "invalid opcode")
# What nodes say when they do not have the block a read names (yet, or any more): a lagging or load-balanced
# backend, a reset dev chain, a head taken from elsewhere. Never the caller's fault: re-read the head or fail over.
_BLOCK_UNAVAILABLE = (
    "header not found",
    "block not found",
    "unknown block",
    "block out of range",
    "blockoutofrange",
    "missing trie node",
    "no state available",
)
# What nodes and providers say when a batch carries more calls (or a bigger answer) than they take, as one
# error for the whole batch (a lone object, or the first call's answer) or on the calls they did not run:
# geth "batch too large" (-32600) and "response too large" (-32003); erigon "batch limit 100 exceeded: 142
# requests given" (-32000); besu "Number of requests exceeds max batch size" (-32005); nethermind "Batch size
# limit exceeded"; jsonrpsee (reth) "The batch request was too large" (-32010) with "Exceeded max limit of N",
# and "The batch response was too large" (-32011); NodeReal "batch size exceed limit 500" (-32005). Some say
# it with HTTP 413. Matched by their words, never by the code alone: -32005 is also every rate limit.
_BATCH_LIMIT_WORDS = ("too large", "too big", "limit", "exceed", "too many", "max")
_RESPONSE_TOO_LARGE = ("response too large", "response size limit")
# The size the refusal names, when it names one ("limit 100", "max limit of 10", "(max 50)").
_LIMIT_HINT_RE = re.compile(r"(?:limit|max)\D{0,20}?(\d{1,6})")

T = TypeVar("T")
_NOTHING = object()


class RpcError(Exception):
    """A JSON-RPC request failed; every attribute and str() is safe to log or return (no URL)."""

    def __init__(self, reason: str, *, method: str | None = None, host: str | None = None) -> None:
        self.reason = reason
        self.method = method
        self.host = host
        # args is what repr() and pickling show, so it carries only the safe reason.
        super().__init__(reason)

    def __str__(self) -> str:
        where = " ".join(part for part in (self.method, f"via {self.host}" if self.host else None) if part)
        return f"rpc {where}: {self.reason}" if where else f"rpc: {self.reason}"


class RpcCallError(RpcError):
    """The node deterministically rejected the call (revert, invalid params): retrying cannot help."""

    def __init__(
        self,
        code: int,
        message: str,
        *,
        data: str | None = None,
        index: int | None = None,
        method: str | None = None,
        host: str | None = None,
    ) -> None:
        self.code = code
        self.message = message[:_MESSAGE_MAX]
        # Revert data (e.g. an encoded Error(string)) lets callers tell a revert's cause.
        self.data = data[:_DATA_MAX] if data is not None else None
        # Position of the failing call inside a batch; None for a single call.
        self.index = index
        super().__init__(f"rpc error {code}: {self.message}", method=method, host=host)


class RpcUnavailable(RpcError):
    """Every attempt on every endpoint failed; the API reports this as 502 E2004."""

    def __init__(
        self,
        reason: str,
        *,
        failures: Sequence[RpcError] = (),
        method: str | None = None,
        host: str | None = None,
    ) -> None:
        # One entry per failed attempt, in order; each is itself URL-free.
        self.failures = tuple(failures)
        super().__init__(reason, method=method, host=host)


@dataclass
class RpcCall:
    """One JSON-RPC call; optional `decode` converts the result and raises ValueError when malformed."""

    method: str
    params: list[Any]
    decode: Callable[[Any], Any] | None = None


class Outcome(enum.Enum):
    """What one failed attempt means for the rest of the request."""

    RETRY = "retry"  # transient: try the other endpoints, then this one again after a backoff
    NEXT_ENDPOINT = "next"  # this endpoint cannot serve the request: not again within this request
    BLOCK_UNAVAILABLE = "block"  # the endpoint lacks the block a read named: re-read its head, or as RETRY
    BATCH_TOO_LARGE = "batch"  # more calls than the endpoint takes in one batch: split it, on the same endpoint


class AttemptFailed(Exception):
    """One attempt on one endpoint failed; `reason` is safe to log (never a URL).

    `limit` is, for BATCH_TOO_LARGE, the batch size the endpoint named as its limit, if it named one.
    """

    def __init__(self, outcome: Outcome, reason: str, *, limit: int | None = None) -> None:
        self.outcome = outcome
        self.reason = reason
        self.limit = limit
        super().__init__(reason)


_DETERMINISTIC, _RETRYABLE, _ENDPOINT, _BLOCK = "deterministic", "retryable", "endpoint", "block"


class _RedactHttpxUrls(logging.Filter):
    """Cut httpx's own "HTTP Request: POST <url>" INFO line down to the host: the URL holds API keys."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and any(isinstance(arg, httpx.URL) for arg in record.args):
            record.args = tuple(endpoint_host(str(arg)) if isinstance(arg, httpx.URL) else arg for arg in record.args)
        return True


def _redact_httpx_logging() -> None:
    # Done when a client is built rather than at import, and only once per process.
    httpx_logger = logging.getLogger("httpx")
    if not any(isinstance(existing, _RedactHttpxUrls) for existing in httpx_logger.filters):
        httpx_logger.addFilter(_RedactHttpxUrls())


def _classify(code: int, message: str, data: str | None = None) -> str:
    """Whether a JSON-RPC error is the call's fault, transient, this endpoint's limitation, or a missing block."""
    text = f"{message} {data or ''}".lower()
    # Before the code: anvil says BlockOutOfRangeError with -32602 (invalid params), geth -32000.
    if (
        code not in (-32700, -32600, -32601)
        and not any(marker in text for marker in _EVM_FAILURES)
        and any(marker in text for marker in _BLOCK_UNAVAILABLE)
    ):
        return _BLOCK
    if code == -32602 or code == 3:  # invalid params; geth's "execution reverted" with data
        return _DETERMINISTIC
    if code == -32603 or code == 429:  # internal error; some providers put the HTTP 429 in the body
        return _RETRYABLE
    if -32099 <= code <= -32000:
        # Server errors are mostly transient (rate limits, "header not found" on a lagging node), but
        # geth reports a data-less revert as -32000 and OpenEthereum as -32015 "Reverted" in data:
        # retrying those only repeats them.
        return _DETERMINISTIC if any(marker in text for marker in _EVM_FAILURES) else _RETRYABLE
    if code in (-32700, -32600, -32601):
        # Our requests are well-formed, so parse error / invalid request / method not found mean this
        # endpoint rejects them (no batch support, method disabled on a public node).
        return _ENDPOINT
    return _DETERMINISTIC


def _too_large(code: int, message: str, data: str | None) -> bool:
    """Whether an error says the batch was bigger than the endpoint takes (see _BATCH_LIMIT_WORDS)."""
    text = f"{message} {data or ''}".lower()
    if code == 3 or any(marker in text for marker in _EVM_FAILURES):
        return False  # a contract's own revert reason may well say "batch size too large"
    if "batch" in text:
        return any(word in text for word in _BATCH_LIMIT_WORDS)
    return any(marker in text for marker in _RESPONSE_TOO_LARGE)


def _refusal(item: Any) -> AttemptFailed | None:
    """A BATCH_TOO_LARGE failure when `item` (one answer object of a batch) is a batch-limit error."""
    error = item.get("error") if isinstance(item, dict) else None
    if not isinstance(error, dict) or not _is_int(error.get("code")):
        return None
    code, message, data = _error_fields(error)
    if not _too_large(code, message, data):
        return None
    hint = _LIMIT_HINT_RE.search(f"{message} {data or ''}".lower())
    return AttemptFailed(
        Outcome.BATCH_TOO_LARGE, f"rpc error {code}: batch too large", limit=int(hint.group(1)) if hint else None
    )


def _parts(calls: list[RpcCall], size: int) -> list[tuple[int, list[RpcCall]]]:
    """`calls` cut into the fewest parts of at most `size` calls, as even as can be, larger first: (start, part).

    Larger first: a part that is refused again teaches the endpoint's limit before the smaller ones go out.
    """
    count = math.ceil(len(calls) / size)
    bounds = [-(-len(calls) * number // count) for number in range(count + 1)]
    return [(start, calls[start:end]) for start, end in itertools.pairwise(bounds)]


def _is_int(value: Any) -> bool:
    # bool is an int subclass, but JSON true is never a valid id or error code.
    return isinstance(value, int) and not isinstance(value, bool)


def _block_param(block: int | str) -> str:
    if isinstance(block, str):
        if block not in _BLOCK_TAGS:
            raise ValueError(f"unknown block tag: {block[:20]!r}")
        return block
    return to_quantity(block)


def _address_param(address: str) -> str:
    if not isinstance(address, str) or not _ADDRESS_RE.fullmatch(address):
        raise ValueError("expected a 0x-prefixed 20-byte hex address")
    # Lower case: some nodes reject mixed case that is not a valid EIP-55 checksum.
    return address.lower()


class Endpoint:
    """One endpoint of a client, for an operation that must stay on it: each call is one attempt, never retried.

    `url` is only for keying per-endpoint memory and never leaves the process; `host` is safe to show.
    """

    def __init__(self, client: JsonRpcClient, url: str) -> None:
        self.url = url
        self.host = endpoint_host(url)
        self._client = client
        # HTTP answers received so far: an attempt that keeps answering is not hedged.
        self.answers = 0

    def __repr__(self) -> str:
        return f"Endpoint({self.host})"

    async def call(self, method: str, params: list[Any], *, decode: Callable[[Any], Any] | None = None) -> Any:
        """One call on this endpoint; raises AttemptFailed or RpcCallError."""
        results = await self._client._attempt(self, [RpcCall(method, list(params), decode)], batch=False)
        return results[0]

    async def batch(self, calls: Sequence[RpcCall]) -> list[Any]:
        """One batch on this endpoint (in parts if it takes fewer calls per batch); results in the order of `calls`."""
        return await self._client._batch_attempt(self, list(calls))


def _consume(task: asyncio.Future[Any]) -> None:
    # A loser cancelled, or finished while nobody waited: its exception is not news, don't warn about it.
    if not task.cancelled():
        task.exception()


class JsonRpcClient:
    """Sends JSON-RPC requests to a list of endpoints: ordered by health, hedged when slow, retried in rounds.

    A request tries the endpoints once each, healthiest first (configured order without `health`): a failure
    moves on to the next one at once, and with `hedge_delay` an attempt that has not answered after that many
    seconds gets the same request sent to the next healthy endpoint, the first good answer wins and the other
    attempt is cancelled. When every endpoint failed, the next round starts after a backoff; `retries` rounds
    follow the first. `health` (one per isolate) remembers outcomes between requests, timed by `clock`, and
    `batch_limits` (by default the health's) the batch sizes endpoints refused, so later batches go out split.
    """

    def __init__(
        self,
        endpoints: Sequence[str],
        *,
        http: httpx.AsyncClient,
        timeout: float = 10.0,
        retries: int = 2,
        backoff_base: float = 0.2,
        backoff_max: float = 2.0,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        health: EndpointHealth | None = None,
        hedge_delay: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        batch_limits: BatchLimits | None = None,
    ) -> None:
        if not endpoints:
            raise ValueError("JsonRpcClient needs at least one endpoint")
        if timeout <= 0 or retries < 0 or backoff_base < 0 or backoff_max < 0:
            raise ValueError("timeout must be > 0; retries and backoff must be >= 0")
        if hedge_delay is not None and hedge_delay <= 0:
            raise ValueError("hedge_delay must be > 0 (or None for no hedging)")
        _redact_httpx_logging()
        self._endpoints = tuple(endpoints)
        self._http = http
        self._timeout = float(timeout)
        self._retries = int(retries)
        self._backoff_base = float(backoff_base)
        self._backoff_max = float(backoff_max)
        self._sleep = sleep
        self._health = health
        self._hedge_delay = hedge_delay
        self._clock = clock
        if batch_limits is None:
            # Without an isolate's health the limits live as long as this client (one request).
            batch_limits = health.batch_limits if health is not None else BatchLimits()
        self._batch_limits = batch_limits
        self._ids = itertools.count(1)
        self._last_host: str | None = None

    @property
    def hosts(self) -> list[str]:
        """The endpoints' hosts in configured order (safe to show)."""
        return [endpoint_host(url) for url in self._endpoints]

    @property
    def last_host(self) -> str | None:
        """Host of the endpoint that answered the last successful request; None before any."""
        return self._last_host

    async def call(self, method: str, params: list[Any], *, decode: Callable[[Any], Any] | None = None) -> Any:
        """One JSON-RPC call; `decode` failures count as a malformed answer (retry/failover)."""
        calls = [RpcCall(method, list(params), decode)]
        results = await self.each_endpoint(lambda endpoint: self._attempt(endpoint, calls, batch=False), method=method)
        return results[0]

    async def batch(self, calls: Sequence[RpcCall]) -> list[Any]:
        """Several calls in one HTTP request per attempt (in parts on an endpoint that takes fewer per batch).

        Results in the order of `calls`, every one from the same endpoint.
        """
        if not calls:
            return []
        listed = list(calls)
        method = listed[0].method if len(listed) == 1 else f"batch[{len(listed)}]"
        return await self.each_endpoint(lambda endpoint: self._batch_attempt(endpoint, listed), method=method)

    async def block_number(self) -> int:
        """eth_blockNumber."""
        return await self.call("eth_blockNumber", [], decode=parse_quantity)

    async def get_balance(self, address: str, block: int | str) -> int:
        """eth_getBalance in wei at `block` (a number or a tag such as "latest")."""
        params = [_address_param(address), _block_param(block)]
        return await self.call("eth_getBalance", params, decode=parse_quantity)

    async def get_code(self, address: str, block: int | str = "latest") -> bytes:
        """eth_getCode; empty bytes for an account without code."""
        params = [_address_param(address), _block_param(block)]
        return await self.call("eth_getCode", params, decode=parse_data)

    async def eth_call(self, to: str, data: bytes, block: int | str) -> bytes:
        """eth_call of `data` against contract `to`; a revert raises RpcCallError."""
        params = [{"to": _address_param(to), "data": to_data(data)}, _block_param(block)]
        return await self.call("eth_call", params, decode=parse_data)

    async def each_endpoint(
        self,
        operation: Callable[[Endpoint], Awaitable[T]],
        *,
        method: str,
        skip: Callable[[str], bool] | None = None,
    ) -> T:
        """Run `operation` on one endpoint after another (health order, hedging, rounds) until one succeeds.

        The operation raises AttemptFailed to move on, or RpcCallError (a deterministic answer) to stop
        everything. `skip(url)`, asked before each round, leaves endpoints out (e.g. known to serve another
        chain). RpcUnavailable when no endpoint succeeded; `method` names the request in logs and errors.
        """
        failures: list[RpcError] = []
        unusable: set[str] = set()
        for round_ in range(self._retries + 1):
            order = self._health.order(self._endpoints, self._clock()) if self._health else list(self._endpoints)
            candidates = [url for url in order if url not in unusable and not (skip is not None and skip(url))]
            if not candidates:
                break
            if round_:
                await self._sleep(self._backoff(round_ - 1))
            found = await self._round(candidates, operation, method, round_ + 1, failures, unusable)
            if found is not _NOTHING:
                return cast(T, found)
        if not failures:
            raise RpcUnavailable(f"no usable endpoint among {len(self._endpoints)}", method=method)
        # Raised outside any except block so no httpx exception (whose text may hold the URL) is chained.
        last = failures[-1]
        raise RpcUnavailable(
            f"all {len(self._endpoints)} endpoint(s) failed; last: {last.reason}",
            failures=failures,
            method=method,
            host=last.host,
        )

    async def _round(
        self,
        candidates: list[str],
        operation: Callable[[Endpoint], Awaitable[T]],
        method: str,
        round_: int,
        failures: list[RpcError],
        unusable: set[str],
    ) -> T | object:
        """One pass over `candidates`: the first success, or _NOTHING when every one of them failed."""
        queue = list(candidates)
        pending: dict[asyncio.Future[T], Endpoint] = {}
        timer: asyncio.Future[None] | None = None
        progress = 0
        won = False

        def launch() -> None:
            endpoint = Endpoint(self, queue.pop(0))
            if self._health is not None:
                self._health.started(endpoint.url, self._clock())
            task = asyncio.ensure_future(operation(endpoint))
            task.add_done_callback(_consume)
            pending[task] = endpoint

        def stop_timer() -> None:
            nonlocal timer
            if timer is not None:
                timer.cancel()
                timer = None

        launch()
        try:
            while pending:
                if timer is None and self._hedge_delay is not None and queue and self._hedgeable(queue[0]):
                    timer = asyncio.ensure_future(self._sleep(self._hedge_delay))
                    progress = sum(endpoint.answers for endpoint in pending.values())
                waiting: set[asyncio.Future[Any]] = set(pending)
                if timer is not None:
                    waiting.add(timer)
                done, _ = await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
                if timer is not None and timer in done:
                    done.discard(timer)
                    timer = None
                    if not done:
                        # Nothing answered for a whole hedge delay: the same request goes to the next endpoint.
                        if sum(endpoint.answers for endpoint in pending.values()) == progress:
                            launch()
                        continue
                # Successes first: a failure finishing at the same moment must not hide an answer.
                for task in sorted(done, key=lambda finished: finished.cancelled() or finished.exception() is not None):
                    endpoint = pending.pop(task)
                    error = None if task.cancelled() else task.exception()
                    if task.cancelled():
                        continue
                    if error is None:
                        self._record(endpoint, ok=True)
                        self._last_host = endpoint.host
                        won = True
                        return task.result()
                    if isinstance(error, AttemptFailed):
                        self._record(endpoint, ok=False)
                        failures.append(RpcError(error.reason, method=method, host=endpoint.host))
                        logger.warning(
                            "rpc %s failed on %s (attempt %d): %s", method, endpoint.host, round_, error.reason
                        )
                        if error.outcome is Outcome.NEXT_ENDPOINT:
                            unusable.add(endpoint.url)
                        continue
                    if isinstance(error, RpcCallError):
                        # The endpoint works; the call itself is refused (a revert): no other endpoint helps.
                        self._record(endpoint, ok=True)
                    raise error
                if not pending and queue:
                    # Fail over at once; a hedge delay counts from this attempt's start, not the failed one's.
                    stop_timer()
                    launch()
            return _NOTHING
        finally:
            stop_timer()
            for task, endpoint in pending.items():
                task.cancel()
                if self._health is not None:
                    if won:
                        # Lost a hedge: it had not answered within the delay, and the other endpoint had.
                        self._health.failed(endpoint.url, self._clock())
                    else:
                        self._health.abandoned(endpoint.url, self._clock())

    def _hedgeable(self, url: str) -> bool:
        return self._health is None or self._health.healthy(url, self._clock())

    def _record(self, endpoint: Endpoint, *, ok: bool) -> None:
        if self._health is None:
            return
        if ok:
            self._health.succeeded(endpoint.url, self._clock())
        else:
            self._health.failed(endpoint.url, self._clock())

    def _backoff(self, retry: int) -> float:
        delay = min(self._backoff_max, self._backoff_base * 2**retry)
        # Up to 10% jitter so concurrent requests hitting the same outage don't retry in lockstep.
        return min(self._backoff_max, delay * (1 + 0.1 * random.random()))

    async def _batch_attempt(self, endpoint: Endpoint, calls: list[RpcCall]) -> list[Any]:
        """`calls` on `endpoint` as one batch, or in parts when it takes fewer calls per batch; results in order.

        An endpoint that refuses the batch as too large (BATCH_TOO_LARGE) gets it again in halves (or in parts
        of the size it named), recursively, one part after another on this same endpoint: every call still
        reads what its params name (the block a caller pinned), from one provider. The size is remembered for
        the isolate (`batch_limits`), so this endpoint's later batches are split before they are sent. A part
        of one call goes as a plain request, which every endpoint takes.
        """
        limit = self._batch_limits.limit(endpoint.url)
        if limit is not None and (len(calls) > limit or len(calls) == 1):
            return await self._in_parts(endpoint, calls, limit)
        try:
            return await self._attempt(endpoint, calls, batch=True)
        except AttemptFailed as failed:
            if failed.outcome is not Outcome.BATCH_TOO_LARGE:
                raise
            named = failed.limit
        size = named if named is not None and 1 <= named < len(calls) else math.ceil(len(calls) / 2)
        size = self._batch_limits.lower(endpoint.url, size)
        logger.info("rpc batch of %d too large for %s: resent in parts of at most %d", len(calls), endpoint.host, size)
        return await self._in_parts(endpoint, calls, size)

    async def _in_parts(self, endpoint: Endpoint, calls: list[RpcCall], size: int) -> list[Any]:
        results: list[Any] = []
        refused: RpcCallError | None = None
        for start, part in _parts(calls, size):
            try:
                if len(part) == 1:
                    results.extend(await self._attempt(endpoint, part, batch=False))
                else:
                    results.extend(await self._batch_attempt(endpoint, part))
            except RpcCallError as error:
                # Its index is into the part; the caller's is into `calls`.
                refused = RpcCallError(
                    error.code,
                    error.message,
                    data=error.data,
                    index=start + (error.index or 0),
                    method=error.method,
                    host=error.host,
                )
            if refused is not None:
                raise refused
        return results

    async def _attempt(self, endpoint: Endpoint, calls: list[RpcCall], *, batch: bool) -> list[Any]:
        host = endpoint.host
        ids = [next(self._ids) for _ in calls]
        requests = [
            {"jsonrpc": "2.0", "id": id_, "method": call.method, "params": call.params}
            for id_, call in zip(ids, calls, strict=True)
        ]
        payload = requests if batch else requests[0]
        body = json.dumps(payload, separators=(",", ":")).encode()
        response = await self._post(endpoint.url, body)
        endpoint.answers += 1
        status = response.status_code
        if status == 413 and batch:
            # Payload too large: a smaller batch may well pass.
            raise AttemptFailed(Outcome.BATCH_TOO_LARGE, "http 413")
        if status in (408, 429) or status >= 500:
            raise AttemptFailed(Outcome.RETRY, f"http {status}")
        try:
            answer = json.loads(response.content)
        except (ValueError, RecursionError):
            # A 4xx page that isn't JSON is an endpoint problem (bad key, wrong path): fail over.
            outcome = Outcome.RETRY if 200 <= status < 300 else Outcome.NEXT_ENDPOINT
            reason = "malformed response: not json" if outcome is Outcome.RETRY else f"http {status}"
            raise AttemptFailed(outcome, reason) from None
        if not 200 <= status < 300:
            # Some providers send a deterministic JSON-RPC error (revert, invalid params) or a batch limit
            # with a 4xx status; honour those, and treat anything else as this endpoint refusing us.
            try:
                self._check(answer, ids, calls, batch=batch, host=host)
            except AttemptFailed as failed:
                if failed.outcome is Outcome.BATCH_TOO_LARGE:
                    raise
            raise AttemptFailed(Outcome.NEXT_ENDPOINT, f"http {status}")
        return self._check(answer, ids, calls, batch=batch, host=host)

    async def _post(self, url: str, body: bytes) -> httpx.Response:
        try:
            # wait_for is a hard deadline for transports that ignore httpx's timeout (Pyodide's fetch).
            return await asyncio.wait_for(
                self._http.post(
                    url,
                    content=body,
                    headers={"content-type": "application/json", "accept": "application/json"},
                    timeout=httpx.Timeout(self._timeout),
                ),
                timeout=self._timeout,
            )
        except (httpx.TimeoutException, TimeoutError):
            raise AttemptFailed(Outcome.RETRY, "timeout") from None
        except httpx.UnsupportedProtocol:
            # A misconfigured URL (no/unknown scheme) will never work: don't spend retries on it.
            raise AttemptFailed(Outcome.NEXT_ENDPOINT, "transport error: UnsupportedProtocol") from None
        except httpx.TransportError as exc:
            # Only the class name: httpx messages can quote the URL.
            raise AttemptFailed(Outcome.RETRY, f"transport error: {type(exc).__name__}") from None
        except Exception as exc:
            # Anything else (invalid URL, a JS fetch exception under Pyodide) is this endpoint being
            # unusable; it must become a failover, never a 500.
            raise AttemptFailed(Outcome.NEXT_ENDPOINT, f"transport error: {type(exc).__name__}") from None

    def _check(self, answer: Any, ids: list[int], calls: list[RpcCall], *, batch: bool, host: str) -> list[Any]:
        """Validate the answer's shape and ids, then return decoded results in request order."""
        if batch:
            if isinstance(answer, dict):
                # A node that refuses batches, or this one as too large, or is rate limiting: one error object.
                _raise_endpoint_error(answer, batch=True)
            if not isinstance(answer, list):
                raise AttemptFailed(Outcome.RETRY, "malformed response: expected a json array")
            items = answer
        else:
            items = [answer]
        by_id: dict[int, dict[str, Any]] = {}
        for item in items:
            if not isinstance(item, dict) or item.get("jsonrpc") != "2.0":
                raise AttemptFailed(Outcome.RETRY, "malformed response: not a json-rpc 2.0 object")
            id_ = item.get("id")
            if id_ is None and "error" in item:
                # An error the node could not tie to one request concerns the whole request.
                _raise_endpoint_error(item, batch=batch)
            if not _is_int(id_) or id_ not in ids:
                raise AttemptFailed(Outcome.RETRY, "malformed response: wrong id")
            if id_ in by_id:
                raise AttemptFailed(Outcome.RETRY, "malformed response: duplicate id")
            by_id[id_] = item
        if batch:
            # geth answers a batch over its limit with one error on the first call's id, and the calls past its
            # response size limit with errors: a smaller batch is the cure, not the same one again.
            for item in by_id.values():
                refusal = _refusal(item)
                if refusal is not None:
                    raise refusal
        if len(by_id) != len(ids):
            raise AttemptFailed(Outcome.RETRY, "malformed response: batch missing an answer")

        results: list[Any] = []
        deterministic: RpcCallError | None = None
        endpoint_reason: str | None = None
        for index, (id_, call) in enumerate(zip(ids, calls, strict=True)):
            item = by_id[id_]
            has_result, has_error = "result" in item, "error" in item
            if has_result == has_error:
                raise AttemptFailed(Outcome.RETRY, "malformed response: need exactly one of result, error")
            if has_error:
                code, message, data = _error_fields(item["error"])
                kind = _classify(code, message, data)
                if kind == _RETRYABLE:
                    raise AttemptFailed(Outcome.RETRY, f"rpc error {code}")
                if kind == _BLOCK:
                    raise AttemptFailed(Outcome.BLOCK_UNAVAILABLE, f"rpc error {code}: block not available")
                if kind == _ENDPOINT:
                    endpoint_reason = endpoint_reason or f"rpc error {code}"
                elif deterministic is None:
                    deterministic = RpcCallError(
                        code,
                        message,
                        data=data,
                        index=index if batch else None,
                        method=call.method,
                        host=host,
                    )
                results.append(None)
                continue
            results.append(_decode(call, item["result"]))
        if endpoint_reason is not None:
            raise AttemptFailed(Outcome.NEXT_ENDPOINT, endpoint_reason)
        if deterministic is not None:
            raise deterministic
        return results


def _error_fields(error: Any) -> tuple[int, str, str | None]:
    if not isinstance(error, dict) or not _is_int(error.get("code")):
        raise AttemptFailed(Outcome.RETRY, "malformed response: bad error object")
    message = error.get("message")
    data = error.get("data")
    return error["code"], message if isinstance(message, str) else "", data if isinstance(data, str) else None


def _raise_endpoint_error(item: dict[str, Any], *, batch: bool) -> None:
    """Turn a request-level error object (id null, or a lone object for a batch) into a failure."""
    if item.get("jsonrpc") != "2.0" or "error" not in item:
        raise AttemptFailed(Outcome.RETRY, "malformed response: not a json-rpc 2.0 object")
    refusal = _refusal(item) if batch else None
    if refusal is not None:
        raise refusal
    code, message, data = _error_fields(item["error"])
    kind = _classify(code, message, data)
    if kind == _BLOCK:
        raise AttemptFailed(Outcome.BLOCK_UNAVAILABLE, f"rpc error {code}: block not available")
    outcome = Outcome.RETRY if kind == _RETRYABLE else Outcome.NEXT_ENDPOINT
    raise AttemptFailed(outcome, f"rpc error {code}")


def _decode(call: RpcCall, result: Any) -> Any:
    if call.decode is None:
        return result
    try:
        return call.decode(result)
    except MalformedValue as exc:
        raise AttemptFailed(Outcome.RETRY, f"malformed response: {exc}"[:_MESSAGE_MAX]) from None
    except (ValueError, TypeError):
        # A caller's decoder may put anything in its message; keep the reason generic.
        raise AttemptFailed(Outcome.RETRY, "malformed response: bad result") from None
