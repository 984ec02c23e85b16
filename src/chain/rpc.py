"""An Ethereum JSON-RPC client over async httpx with timeouts, retries, failover and strict answer checks."""

from __future__ import annotations

import asyncio
import contextlib
import enum
import itertools
import json
import logging
import random
import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from chain.hexutil import MalformedValue, parse_data, parse_quantity, to_data, to_quantity
from chain.networks import endpoint_host

__all__ = [
    "JsonRpcClient",
    "MalformedValue",
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


class _Outcome(enum.Enum):
    RETRY = "retry"  # transient: retry this endpoint after a backoff, then fail over
    NEXT_ENDPOINT = "next"  # this endpoint cannot serve the request: fail over right away


class _AttemptFailed(Exception):
    def __init__(self, outcome: _Outcome, reason: str) -> None:
        self.outcome = outcome
        self.reason = reason
        super().__init__(reason)


_DETERMINISTIC, _RETRYABLE, _ENDPOINT = "deterministic", "retryable", "endpoint"


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
    """Whether a JSON-RPC error is the call's fault, transient, or this endpoint's limitation."""
    if code == -32602 or code == 3:  # invalid params; geth's "execution reverted" with data
        return _DETERMINISTIC
    if code == -32603 or code == 429:  # internal error; some providers put the HTTP 429 in the body
        return _RETRYABLE
    if -32099 <= code <= -32000:
        # Server errors are mostly transient (rate limits, "header not found" on a lagging node), but
        # geth reports a data-less revert as -32000 and OpenEthereum as -32015 "Reverted" in data:
        # retrying those only repeats them.
        text = f"{message} {data or ''}".lower()
        return _DETERMINISTIC if any(marker in text for marker in _EVM_FAILURES) else _RETRYABLE
    if code in (-32700, -32600, -32601):
        # Our requests are well-formed, so parse error / invalid request / method not found mean this
        # endpoint rejects them (no batch support, method disabled on a public node).
        return _ENDPOINT
    return _DETERMINISTIC


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


class JsonRpcClient:
    """Sends JSON-RPC requests to a list of endpoints, retrying and failing over in order."""

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
    ) -> None:
        if not endpoints:
            raise ValueError("JsonRpcClient needs at least one endpoint")
        if timeout <= 0 or retries < 0 or backoff_base < 0 or backoff_max < 0:
            raise ValueError("timeout must be > 0; retries and backoff must be >= 0")
        _redact_httpx_logging()
        self._endpoints = tuple(endpoints)
        self._http = http
        self._timeout = float(timeout)
        self._retries = int(retries)
        self._backoff_base = float(backoff_base)
        self._backoff_max = float(backoff_max)
        self._sleep = sleep
        self._ids = itertools.count(1)
        self._last_host: str | None = None

    @property
    def hosts(self) -> list[str]:
        """The endpoints' hosts in failover order (safe to show)."""
        return [endpoint_host(url) for url in self._endpoints]

    @property
    def last_host(self) -> str | None:
        """Host of the endpoint that answered the last successful request; None before any."""
        return self._last_host

    async def call(self, method: str, params: list[Any], *, decode: Callable[[Any], Any] | None = None) -> Any:
        """One JSON-RPC call; `decode` failures count as a malformed answer (retry/failover)."""
        results = await self._run([RpcCall(method, list(params), decode)], batch=False)
        return results[0]

    async def batch(self, calls: Sequence[RpcCall]) -> list[Any]:
        """Several calls in one HTTP request per attempt; results in the order of `calls`."""
        if not calls:
            return []
        return await self._run(list(calls), batch=True)

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

    async def _run(self, calls: list[RpcCall], *, batch: bool) -> list[Any]:
        method = calls[0].method if len(calls) == 1 else f"batch[{len(calls)}]"
        failures: list[RpcError] = []
        for url in self._endpoints:
            host = endpoint_host(url)
            for attempt in range(self._retries + 1):
                if attempt:
                    await self._sleep(self._backoff(attempt - 1))
                try:
                    results = await self._attempt(url, host, calls, batch=batch)
                except _AttemptFailed as failed:
                    failures.append(RpcError(failed.reason, method=method, host=host))
                    logger.warning("rpc %s failed on %s (attempt %d): %s", method, host, attempt + 1, failed.reason)
                    if failed.outcome is _Outcome.NEXT_ENDPOINT:
                        break
                    continue
                self._last_host = host
                return results
        # Raised outside any except block so no httpx exception (whose text may hold the URL) is chained.
        last = failures[-1]
        raise RpcUnavailable(
            f"all {len(self._endpoints)} endpoint(s) failed; last: {last.reason}",
            failures=failures,
            method=method,
            host=last.host,
        )

    def _backoff(self, retry: int) -> float:
        delay = min(self._backoff_max, self._backoff_base * 2**retry)
        # Up to 10% jitter so concurrent requests hitting the same outage don't retry in lockstep.
        return min(self._backoff_max, delay * (1 + 0.1 * random.random()))

    async def _attempt(self, url: str, host: str, calls: list[RpcCall], *, batch: bool) -> list[Any]:
        ids = [next(self._ids) for _ in calls]
        requests = [
            {"jsonrpc": "2.0", "id": id_, "method": call.method, "params": call.params}
            for id_, call in zip(ids, calls, strict=True)
        ]
        payload = requests if batch else requests[0]
        body = json.dumps(payload, separators=(",", ":")).encode()
        response = await self._post(url, body)
        status = response.status_code
        if status in (408, 429) or status >= 500:
            raise _AttemptFailed(_Outcome.RETRY, f"http {status}")
        try:
            answer = json.loads(response.content)
        except (ValueError, RecursionError):
            # A 4xx page that isn't JSON is an endpoint problem (bad key, wrong path): fail over.
            outcome = _Outcome.RETRY if 200 <= status < 300 else _Outcome.NEXT_ENDPOINT
            reason = "malformed response: not json" if outcome is _Outcome.RETRY else f"http {status}"
            raise _AttemptFailed(outcome, reason) from None
        if not 200 <= status < 300:
            # Some providers send a deterministic JSON-RPC error (revert, invalid params) with a 4xx
            # status; honour it, and treat anything else as this endpoint refusing us.
            with contextlib.suppress(_AttemptFailed):
                self._check(answer, ids, calls, batch=batch, host=host)
            raise _AttemptFailed(_Outcome.NEXT_ENDPOINT, f"http {status}")
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
            raise _AttemptFailed(_Outcome.RETRY, "timeout") from None
        except httpx.UnsupportedProtocol:
            # A misconfigured URL (no/unknown scheme) will never work: don't spend retries on it.
            raise _AttemptFailed(_Outcome.NEXT_ENDPOINT, "transport error: UnsupportedProtocol") from None
        except httpx.TransportError as exc:
            # Only the class name: httpx messages can quote the URL.
            raise _AttemptFailed(_Outcome.RETRY, f"transport error: {type(exc).__name__}") from None
        except Exception as exc:
            # Anything else (invalid URL, a JS fetch exception under Pyodide) is this endpoint being
            # unusable; it must become a failover, never a 500.
            raise _AttemptFailed(_Outcome.NEXT_ENDPOINT, f"transport error: {type(exc).__name__}") from None

    def _check(self, answer: Any, ids: list[int], calls: list[RpcCall], *, batch: bool, host: str) -> list[Any]:
        """Validate the answer's shape and ids, then return decoded results in request order."""
        if batch:
            if isinstance(answer, dict):
                # A node that refuses batches (or is rate limiting) answers one error object.
                _raise_endpoint_error(answer)
            if not isinstance(answer, list):
                raise _AttemptFailed(_Outcome.RETRY, "malformed response: expected a json array")
            items = answer
        else:
            items = [answer]
        by_id: dict[int, dict[str, Any]] = {}
        for item in items:
            if not isinstance(item, dict) or item.get("jsonrpc") != "2.0":
                raise _AttemptFailed(_Outcome.RETRY, "malformed response: not a json-rpc 2.0 object")
            id_ = item.get("id")
            if id_ is None and "error" in item:
                # An error the node could not tie to one request concerns the whole request.
                _raise_endpoint_error(item)
            if not _is_int(id_) or id_ not in ids:
                raise _AttemptFailed(_Outcome.RETRY, "malformed response: wrong id")
            if id_ in by_id:
                raise _AttemptFailed(_Outcome.RETRY, "malformed response: duplicate id")
            by_id[id_] = item
        if len(by_id) != len(ids):
            raise _AttemptFailed(_Outcome.RETRY, "malformed response: batch missing an answer")

        results: list[Any] = []
        deterministic: RpcCallError | None = None
        endpoint_reason: str | None = None
        for index, (id_, call) in enumerate(zip(ids, calls, strict=True)):
            item = by_id[id_]
            has_result, has_error = "result" in item, "error" in item
            if has_result == has_error:
                raise _AttemptFailed(_Outcome.RETRY, "malformed response: need exactly one of result, error")
            if has_error:
                code, message, data = _error_fields(item["error"])
                kind = _classify(code, message, data)
                if kind == _RETRYABLE:
                    raise _AttemptFailed(_Outcome.RETRY, f"rpc error {code}")
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
            raise _AttemptFailed(_Outcome.NEXT_ENDPOINT, endpoint_reason)
        if deterministic is not None:
            raise deterministic
        return results


def _error_fields(error: Any) -> tuple[int, str, str | None]:
    if not isinstance(error, dict) or not _is_int(error.get("code")):
        raise _AttemptFailed(_Outcome.RETRY, "malformed response: bad error object")
    message = error.get("message")
    data = error.get("data")
    return error["code"], message if isinstance(message, str) else "", data if isinstance(data, str) else None


def _raise_endpoint_error(item: dict[str, Any]) -> None:
    """Turn a request-level error object (id null, or a lone object for a batch) into a failure."""
    if item.get("jsonrpc") != "2.0" or "error" not in item:
        raise _AttemptFailed(_Outcome.RETRY, "malformed response: not a json-rpc 2.0 object")
    code, message, data = _error_fields(item["error"])
    outcome = _Outcome.RETRY if _classify(code, message, data) == _RETRYABLE else _Outcome.NEXT_ENDPOINT
    raise _AttemptFailed(outcome, f"rpc error {code}")


def _decode(call: RpcCall, result: Any) -> Any:
    if call.decode is None:
        return result
    try:
        return call.decode(result)
    except MalformedValue as exc:
        raise _AttemptFailed(_Outcome.RETRY, f"malformed response: {exc}"[:_MESSAGE_MAX]) from None
    except (ValueError, TypeError):
        # A caller's decoder may put anything in its message; keep the reason generic.
        raise _AttemptFailed(_Outcome.RETRY, "malformed response: bad result") from None
