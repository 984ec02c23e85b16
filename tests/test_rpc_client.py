"""Tests for the JSON-RPC client: request shape, retries, failover, answer validation, redaction."""

from __future__ import annotations

import asyncio
import json
import logging
import random
import traceback
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from pytest_httpx import HTTPXMock

from chain.rpc import (
    JsonRpcClient,
    MalformedValue,
    RpcCall,
    RpcCallError,
    RpcError,
    RpcUnavailable,
    parse_data,
    parse_quantity,
    to_data,
    to_quantity,
)

URL = "https://eth.example/v2/SECRETKEY123"
URL2 = "https://backup.example:8443/rpc?key=OTHERSECRET"
SECRETS = ("SECRETKEY123", "OTHERSECRET", "/v2/", "?key")
ADDRESS = "0x" + "Ab" * 20


class SleepRecorder:
    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)


@pytest.fixture
def sleeps() -> SleepRecorder:
    return SleepRecorder()


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as client:
        yield client


@pytest.fixture
def make_client(http: httpx.AsyncClient, sleeps: SleepRecorder) -> Callable[..., JsonRpcClient]:
    def make(endpoints: list[str] | None = None, **kwargs: Any) -> JsonRpcClient:
        return JsonRpcClient(endpoints or [URL], http=http, sleep=sleeps, **kwargs)

    return make


def body(request: httpx.Request) -> Any:
    return json.loads(request.content)


def node(answer: Callable[[dict[str, Any]], dict[str, Any]], *, shuffle: bool = False) -> Callable:
    """A fake node: answers each request object (single or batch) with `answer(request_object)`."""

    def callback(request: httpx.Request) -> httpx.Response:
        payload = body(request)
        if isinstance(payload, list):
            items = [{"jsonrpc": "2.0", "id": call["id"], **answer(call)} for call in payload]
            if shuffle:
                items.reverse()
                random.Random(7).shuffle(items)
            return httpx.Response(200, json=items)
        return httpx.Response(200, json={"jsonrpc": "2.0", "id": payload["id"], **answer(payload)})

    return callback


def result(value: Any) -> Callable[[dict[str, Any]], dict[str, Any]]:
    return lambda call: {"result": value}


def error(code: int, message: str = "boom", **extra: Any) -> Callable[[dict[str, Any]], dict[str, Any]]:
    return lambda call: {"error": {"code": code, "message": message, **extra}}


def assert_no_secret(*texts: str) -> None:
    for text in texts:
        for secret in SECRETS:
            assert secret not in text, f"{secret!r} leaked in {text!r}"


# --- success -------------------------------------------------------------------------------------


async def test_call_sends_exact_json_rpc_request(httpx_mock: HTTPXMock, make_client: Callable) -> None:
    httpx_mock.add_callback(node(result("0x10")), url=URL, method="POST")
    client = make_client(timeout=7.5)
    assert client.last_host is None
    assert await client.call("eth_chainId", []) == "0x10"

    request = httpx_mock.get_request()
    assert body(request) == {"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []}
    assert request.headers["content-type"] == "application/json"
    assert request.extensions["timeout"] == {"connect": 7.5, "read": 7.5, "write": 7.5, "pool": 7.5}
    assert client.last_host == "eth.example"


async def test_request_ids_increase_per_client(httpx_mock: HTTPXMock, make_client: Callable) -> None:
    httpx_mock.add_callback(node(result("0x1")), is_reusable=True)
    client = make_client()
    await client.call("eth_blockNumber", [])
    await client.call("eth_blockNumber", [])
    await client.batch([RpcCall("eth_blockNumber", []), RpcCall("eth_chainId", [])])
    ids = [
        body(r)["id"] if isinstance(body(r), dict) else [c["id"] for c in body(r)] for r in httpx_mock.get_requests()
    ]
    assert ids == [1, 2, [3, 4]]


async def test_batch_is_one_request_and_matches_shuffled_answers_by_id(
    httpx_mock: HTTPXMock, make_client: Callable
) -> None:
    answers = {"eth_blockNumber": "0x2a", "eth_chainId": "0x1", "eth_getBalance": "0xde0b6b3a7640000"}
    httpx_mock.add_callback(node(lambda call: {"result": answers[call["method"]]}, shuffle=True))
    client = make_client()
    calls = [
        RpcCall("eth_getBalance", [ADDRESS.lower(), "latest"]),
        RpcCall("eth_blockNumber", []),
        RpcCall("eth_chainId", [], decode=parse_quantity),
    ]
    assert await client.batch(calls) == ["0xde0b6b3a7640000", "0x2a", 1]

    requests = httpx_mock.get_requests()
    assert len(requests) == 1
    assert body(requests[0]) == [
        {"jsonrpc": "2.0", "id": 1, "method": "eth_getBalance", "params": [ADDRESS.lower(), "latest"]},
        {"jsonrpc": "2.0", "id": 2, "method": "eth_blockNumber", "params": []},
        {"jsonrpc": "2.0", "id": 3, "method": "eth_chainId", "params": []},
    ]
    assert client.last_host == "eth.example"


async def test_empty_batch_sends_nothing(make_client: Callable) -> None:
    assert await make_client().batch([]) == []


# --- typed helpers -------------------------------------------------------------------------------


async def test_block_number_and_get_balance(httpx_mock: HTTPXMock, make_client: Callable) -> None:
    httpx_mock.add_callback(node(result("0x1b4")))
    httpx_mock.add_callback(node(result("0xde0b6b3a7640000")))
    client = make_client()
    assert await client.block_number() == 436
    assert await client.get_balance(ADDRESS, 436) == 10**18
    assert body(httpx_mock.get_requests()[1])["params"] == [ADDRESS.lower(), "0x1b4"]


async def test_get_code_and_eth_call(httpx_mock: HTTPXMock, make_client: Callable) -> None:
    httpx_mock.add_callback(node(result("0x6080")))
    httpx_mock.add_callback(node(result("0x")))
    httpx_mock.add_callback(node(result("0x" + "00" * 31 + "05")))
    client = make_client()
    assert await client.get_code(ADDRESS) == b"\x60\x80"
    assert await client.get_code(ADDRESS, 5) == b""
    assert await client.eth_call(ADDRESS, bytes.fromhex("70a08231"), "finalized") == b"\x00" * 31 + b"\x05"
    params = [body(r)["params"] for r in httpx_mock.get_requests()]
    assert params == [
        [ADDRESS.lower(), "latest"],
        [ADDRESS.lower(), "0x5"],
        [{"to": ADDRESS.lower(), "data": "0x70a08231"}, "finalized"],
    ]


async def test_helpers_reject_bad_arguments_without_sending(make_client: Callable) -> None:
    client = make_client()
    with pytest.raises(ValueError):
        await client.get_balance("0x1234", 1)
    with pytest.raises(ValueError):
        await client.get_balance(ADDRESS, -1)
    with pytest.raises(ValueError):
        await client.get_code(ADDRESS, "newest")


async def test_result_of_wrong_type_is_retried(
    httpx_mock: HTTPXMock, make_client: Callable, sleeps: SleepRecorder
) -> None:
    httpx_mock.add_callback(node(result(436)))  # a number, not a hex quantity
    httpx_mock.add_callback(node(result("0xZZ")))
    httpx_mock.add_callback(node(result("0x1b4")))
    assert await make_client().block_number() == 436
    assert len(sleeps.delays) == 2


async def test_result_of_wrong_type_everywhere_is_unavailable(httpx_mock: HTTPXMock, make_client: Callable) -> None:
    httpx_mock.add_callback(node(result("0x123")), is_reusable=True)  # odd-length data
    with pytest.raises(RpcUnavailable) as info:
        await make_client(retries=1).get_code(ADDRESS)
    assert info.value.reason.endswith("malformed response: expected 0x hex data of even length")


async def test_custom_decoder_error_is_a_generic_malformed_reason(httpx_mock: HTTPXMock, make_client: Callable) -> None:
    def decode(value: Any) -> Any:
        raise ValueError("weird detail from a decoder")

    httpx_mock.add_callback(node(result("0x1")))
    with pytest.raises(RpcUnavailable) as info:
        await make_client(retries=0).call("eth_chainId", [], decode=decode)
    assert info.value.failures[0].reason == "malformed response: bad result"


# --- transient failures: retry ---------------------------------------------------------------------


async def test_timeout_then_success(httpx_mock: HTTPXMock, make_client: Callable, sleeps: SleepRecorder) -> None:
    httpx_mock.add_exception(httpx.ReadTimeout("timed out"))
    httpx_mock.add_callback(node(result("0x1")))
    assert await make_client().call("eth_chainId", []) == "0x1"
    assert len(sleeps.delays) == 1


async def test_only_timeouts_is_unavailable(httpx_mock: HTTPXMock, make_client: Callable) -> None:
    httpx_mock.add_exception(httpx.ReadTimeout("timed out"), is_reusable=True)
    with pytest.raises(RpcUnavailable) as info:
        await make_client().call("eth_chainId", [])
    assert len(httpx_mock.get_requests()) == 3  # 1 + 2 retries
    assert [f.reason for f in info.value.failures] == ["timeout"] * 3
    assert info.value.method == "eth_chainId"
    assert info.value.host == "eth.example"


async def test_transport_that_ignores_timeout_is_cut_off(httpx_mock: HTTPXMock, make_client: Callable) -> None:
    async def hang(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(30)
        return httpx.Response(200, json={})

    httpx_mock.add_callback(hang, is_reusable=True)
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(RpcUnavailable) as info:
        await make_client(timeout=0.05, retries=1).call("eth_chainId", [])
    assert loop.time() - started < 2
    assert [f.reason for f in info.value.failures] == ["timeout", "timeout"]


@pytest.mark.parametrize("status", [500, 502, 503, 504, 429, 408])
async def test_http_5xx_or_429_then_success(httpx_mock: HTTPXMock, make_client: Callable, status: int) -> None:
    httpx_mock.add_response(status_code=status, text="busy")
    httpx_mock.add_callback(node(result("0x1")))
    assert await make_client().call("eth_chainId", []) == "0x1"
    assert len(httpx_mock.get_requests()) == 2


async def test_non_json_body_is_retried(httpx_mock: HTTPXMock, make_client: Callable) -> None:
    httpx_mock.add_response(text="<html>gateway hiccup</html>")
    httpx_mock.add_callback(node(result("0x1")))
    assert await make_client().call("eth_chainId", []) == "0x1"


@pytest.mark.parametrize("code", [-32603, -32000, -32005, -32099, 429])
async def test_internal_and_server_errors_are_retried(httpx_mock: HTTPXMock, make_client: Callable, code: int) -> None:
    httpx_mock.add_callback(node(error(code, "header not found")))
    httpx_mock.add_callback(node(result("0x1")))
    assert await make_client().call("eth_chainId", []) == "0x1"
    assert len(httpx_mock.get_requests()) == 2


@pytest.mark.parametrize(
    ("answer", "reason"),
    [
        ({"jsonrpc": "2.0", "id": 99, "result": "0x1"}, "malformed response: wrong id"),
        ({"jsonrpc": "2.0", "id": "1", "result": "0x1"}, "malformed response: wrong id"),
        ({"jsonrpc": "2.0", "id": True, "result": "0x1"}, "malformed response: wrong id"),
        ({"jsonrpc": "2.0", "result": "0x1"}, "malformed response: wrong id"),
        ({"jsonrpc": "2.0", "id": 1}, "malformed response: need exactly one of result, error"),
        (
            {"jsonrpc": "2.0", "id": 1, "result": "0x1", "error": {"code": 3, "message": "x"}},
            "malformed response: need exactly one of result, error",
        ),
        ({"jsonrpc": "1.0", "id": 1, "result": "0x1"}, "malformed response: not a json-rpc 2.0 object"),
        ({"id": 1, "result": "0x1"}, "malformed response: not a json-rpc 2.0 object"),
        ([{"jsonrpc": "2.0", "id": 1, "result": "0x1"}], "malformed response: not a json-rpc 2.0 object"),
        ("0x1", "malformed response: not a json-rpc 2.0 object"),
        ({"jsonrpc": "2.0", "id": 1, "error": "bad"}, "malformed response: bad error object"),
        ({"jsonrpc": "2.0", "id": 1, "error": {"code": "3"}}, "malformed response: bad error object"),
    ],
)
async def test_malformed_answer_is_retried(
    httpx_mock: HTTPXMock, make_client: Callable, answer: Any, reason: str
) -> None:
    httpx_mock.add_response(json=answer)
    httpx_mock.add_callback(node(result("0x1")))
    client = make_client(retries=1)
    assert await client.call("eth_chainId", []) == "0x1"
    assert len(httpx_mock.get_requests()) == 2

    httpx_mock.reset()
    httpx_mock.add_response(json=answer, is_reusable=True)
    with pytest.raises(RpcUnavailable) as info:
        await make_client(retries=0).call("eth_chainId", [])
    assert info.value.failures[0].reason == reason


async def test_batch_missing_one_answer_is_retried(httpx_mock: HTTPXMock, make_client: Callable) -> None:
    def partial(request: httpx.Request) -> httpx.Response:
        calls = body(request)
        return httpx.Response(200, json=[{"jsonrpc": "2.0", "id": c["id"], "result": "0x1"} for c in calls[:2]])

    httpx_mock.add_callback(partial)
    httpx_mock.add_callback(node(result("0x2")))
    client = make_client()
    calls = [RpcCall("eth_chainId", []), RpcCall("eth_chainId", []), RpcCall("eth_chainId", [])]
    assert await client.batch(calls) == ["0x2", "0x2", "0x2"]
    first, second = httpx_mock.get_requests()
    assert [c["id"] for c in body(first)] == [1, 2, 3]
    assert [c["id"] for c in body(second)] == [4, 5, 6]  # fresh ids per attempt


@pytest.mark.parametrize(
    "mangle",
    [
        lambda items: [*items, dict(items[0])],  # duplicate answer
        lambda items: [*items[:2], {**items[2], "id": 77}],  # unknown id
        lambda items: items[0],  # single object for a batch
        lambda items: {"jsonrpc": "2.0", "result": items},  # wrapped
        lambda items: [],  # empty array
    ],
)
async def test_batch_malformed_shapes_are_failures(
    httpx_mock: HTTPXMock, make_client: Callable, mangle: Callable
) -> None:
    def bad(request: httpx.Request) -> httpx.Response:
        items = [{"jsonrpc": "2.0", "id": c["id"], "result": "0x1"} for c in body(request)]
        return httpx.Response(200, json=mangle(items))

    httpx_mock.add_callback(bad, is_reusable=True)
    with pytest.raises(RpcUnavailable) as info:
        await make_client(retries=1).batch([RpcCall("eth_chainId", [])] * 3)
    assert info.value.reason.startswith("all 1 endpoint(s) failed; last: malformed response")
    assert info.value.method == "batch[3]"


async def test_batch_item_with_retryable_error_retries_whole_batch(
    httpx_mock: HTTPXMock, make_client: Callable
) -> None:
    httpx_mock.add_callback(node(lambda c: {"result": "0x1"} if c["id"] != 2 else error(-32603)(c)))
    httpx_mock.add_callback(node(result("0x1")))
    assert await make_client().batch([RpcCall("a", []), RpcCall("b", []), RpcCall("c", [])]) == ["0x1"] * 3
    assert len(httpx_mock.get_requests()) == 2


# --- deterministic errors: no retry --------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "message"),
    [(-32602, "invalid argument 0: hex string has odd length"), (3, "execution reverted: nope")],
)
async def test_deterministic_errors_are_not_retried(
    httpx_mock: HTTPXMock, make_client: Callable, sleeps: SleepRecorder, code: int, message: str
) -> None:
    httpx_mock.add_callback(node(error(code, message, data="0x08c379a0")))
    with pytest.raises(RpcCallError) as info:
        await make_client().call("eth_call", [{}, "latest"])
    exc = info.value
    assert (exc.code, exc.message, exc.data) == (code, message, "0x08c379a0")
    assert exc.method == "eth_call" and exc.host == "eth.example" and exc.index is None
    assert isinstance(exc, RpcError) and not isinstance(exc, RpcUnavailable)
    assert len(httpx_mock.get_requests()) == 1
    assert sleeps.delays == []


@pytest.mark.parametrize(
    ("code", "message", "data"),
    [
        (-32000, "execution reverted", None),  # geth, revert without data
        (-32015, "VM execution error.", "Reverted 0x"),  # OpenEthereum style
        (-32000, "invalid opcode: INVALID", None),
        (4001, "a code outside every known range", None),
    ],
)
async def test_evm_failures_and_unknown_codes_are_not_retried(
    httpx_mock: HTTPXMock, make_client: Callable, code: int, message: str, data: str | None
) -> None:
    httpx_mock.add_callback(node(error(code, message, data=data)))
    with pytest.raises(RpcCallError) as info:
        await make_client().eth_call(ADDRESS, b"\x01", "latest")
    assert (info.value.code, info.value.data) == (code, data)
    assert len(httpx_mock.get_requests()) == 1


async def test_deterministic_error_after_a_retry_chains_nothing(httpx_mock: HTTPXMock, make_client: Callable) -> None:
    httpx_mock.add_exception(httpx.ConnectError(f"cannot connect to {URL}"))
    httpx_mock.add_callback(node(error(3, "execution reverted")))
    with pytest.raises(RpcCallError) as info:
        await make_client().call("eth_call", [])
    assert info.value.__cause__ is None and info.value.__context__ is None
    assert_no_secret("".join(traceback.format_exception(info.value)))


async def test_long_error_message_is_truncated(httpx_mock: HTTPXMock, make_client: Callable) -> None:
    httpx_mock.add_callback(node(error(-32602, "x" * 5000)))
    with pytest.raises(RpcCallError) as info:
        await make_client().call("eth_call", [])
    assert len(info.value.message) == 200
    assert len(str(info.value)) < 300


async def test_batch_deterministic_item_error_reports_its_index(httpx_mock: HTTPXMock, make_client: Callable) -> None:
    def answer(call: dict[str, Any]) -> dict[str, Any]:
        return {"result": "0x"} if call["method"] == "ok" else error(3, call["method"])(call)

    httpx_mock.add_callback(node(answer, shuffle=True))
    with pytest.raises(RpcCallError) as info:
        await make_client().batch([RpcCall("ok", []), RpcCall("bad", []), RpcCall("worse", [])])
    # The first failing call in request order is reported.
    assert (info.value.index, info.value.method, info.value.code) == (1, "bad", 3)
    assert info.value.message == "bad"
    assert len(httpx_mock.get_requests()) == 1


async def test_deterministic_error_sent_with_4xx_status_is_honoured(
    httpx_mock: HTTPXMock, make_client: Callable
) -> None:
    def reverted(request: httpx.Request) -> httpx.Response:
        answer = {"jsonrpc": "2.0", "id": body(request)["id"], "error": {"code": 3, "message": "reverted"}}
        return httpx.Response(400, json=answer)

    httpx_mock.add_callback(reverted)
    with pytest.raises(RpcCallError):
        await make_client([URL, URL2]).call("eth_call", [])
    assert len(httpx_mock.get_requests()) == 1


# --- endpoint-specific failures: fail over without retrying ---------------------------------------


@pytest.mark.parametrize("status", [400, 401, 403, 404, 301])
@pytest.mark.parametrize("text", ["no such key", '{"error": "unauthorized"}', '{"jsonrpc": "2.0", "id": 1}'])
async def test_http_4xx_fails_over_without_retry(
    httpx_mock: HTTPXMock, make_client: Callable, sleeps: SleepRecorder, status: int, text: str
) -> None:
    httpx_mock.add_response(status_code=status, text=text, url=URL)
    httpx_mock.add_callback(node(result("0x1")), url=URL2)
    client = make_client([URL, URL2])
    assert await client.call("eth_chainId", []) == "0x1"
    assert client.last_host == "backup.example:8443"
    assert sleeps.delays == []


@pytest.mark.parametrize("code", [-32601, -32600, -32700])
async def test_method_not_supported_fails_over(httpx_mock: HTTPXMock, make_client: Callable, code: int) -> None:
    httpx_mock.add_callback(node(error(code, "method disabled")), url=URL)
    httpx_mock.add_callback(node(result("0x1")), url=URL2)
    assert await make_client([URL, URL2]).call("debug_x", []) == "0x1"


async def test_batch_rejected_with_single_error_object_fails_over(httpx_mock: HTTPXMock, make_client: Callable) -> None:
    rejection = {"jsonrpc": "2.0", "id": None, "error": {"code": -32600, "message": "batch not supported"}}
    httpx_mock.add_response(json=rejection, url=URL)
    httpx_mock.add_callback(node(result("0x1")), url=URL2)
    client = make_client([URL, URL2])
    assert await client.batch([RpcCall("a", []), RpcCall("b", [])]) == ["0x1", "0x1"]
    assert client.last_host == "backup.example:8443"


async def test_rate_limit_error_with_null_id_is_retried(httpx_mock: HTTPXMock, make_client: Callable) -> None:
    limited = {"jsonrpc": "2.0", "id": None, "error": {"code": -32005, "message": "rate limited"}}
    httpx_mock.add_response(json=limited)
    httpx_mock.add_callback(node(result("0x1")))
    assert await make_client().call("eth_chainId", []) == "0x1"


async def test_first_endpoint_down_second_up(
    httpx_mock: HTTPXMock, make_client: Callable, sleeps: SleepRecorder
) -> None:
    httpx_mock.add_exception(httpx.ConnectError("connection refused"), url=URL, is_reusable=True)
    httpx_mock.add_callback(node(result("0x1")), url=URL2)
    client = make_client([URL, URL2])
    assert await client.call("eth_chainId", []) == "0x1"
    assert client.last_host == "backup.example:8443"
    # Issue 14 item 3: a failure moves on to the next endpoint at once, no retries or backoff first.
    assert len(httpx_mock.get_requests(url=URL)) == 1
    assert sleeps.delays == []


async def test_invalid_endpoint_url_fails_over(httpx_mock: HTTPXMock, make_client: Callable) -> None:
    # What real httpx raises for "ftp://…" / "https://" and for "http://[::1/" respectively.
    httpx_mock.add_exception(httpx.UnsupportedProtocol("unsupported protocol"), url="https://a.example/SECRETKEY123")
    httpx_mock.add_exception(httpx.InvalidURL("Invalid port"), url="https://b.example/SECRETKEY123")
    httpx_mock.add_callback(node(result("0x1")), url=URL2)
    client = make_client(["https://a.example/SECRETKEY123", "https://b.example/SECRETKEY123", URL2])
    assert await client.call("eth_chainId", []) == "0x1"
    assert len(httpx_mock.get_requests()) == 3  # neither bad endpoint was retried


# --- all endpoints down ---------------------------------------------------------------------------


async def test_all_endpoints_down_raises_unavailable_without_urls(
    httpx_mock: HTTPXMock, make_client: Callable, caplog: pytest.LogCaptureFixture
) -> None:
    httpx_mock.add_exception(httpx.ConnectError(f"cannot connect to {URL}"), url=URL, is_reusable=True)
    httpx_mock.add_response(status_code=503, text=f"upstream {URL2} down", url=URL2, is_reusable=True)
    caplog.set_level(logging.DEBUG)
    with pytest.raises(RpcUnavailable) as info:
        await make_client([URL, URL2]).call("eth_getBalance", [ADDRESS, "latest"])
    exc = info.value
    assert isinstance(exc, RpcError)
    assert len(httpx_mock.get_requests()) == 6
    # Three rounds over both endpoints, each in order.
    assert [f.reason for f in exc.failures] == ["transport error: ConnectError", "http 503"] * 3
    assert [f.host for f in exc.failures] == ["eth.example", "backup.example:8443"] * 3
    assert exc.host == "backup.example:8443"
    assert exc.reason == "all 2 endpoint(s) failed; last: http 503"
    assert str(exc) == "rpc eth_getBalance via backup.example:8443: all 2 endpoint(s) failed; last: http 503"
    assert exc.__cause__ is None and exc.__context__ is None
    texts = [
        str(exc),
        repr(exc),
        repr(exc.args),
        repr(vars(exc)),
        "".join(traceback.format_exception(exc)),
        caplog.text,
    ]
    texts += [f"{f} {f!r} {vars(f)}" for f in exc.failures]
    assert_no_secret(*texts)
    assert "eth.example" in caplog.text  # logs do name the host
    # httpx's own INFO line about each request is redacted to the host too.
    assert 'HTTP Request: POST backup.example:8443 "HTTP/1.1 503' in caplog.text


async def test_unexpected_transport_exception_becomes_unavailable(httpx_mock: HTTPXMock, make_client: Callable) -> None:
    class JsException(Exception):
        pass

    httpx_mock.add_exception(JsException(f"fetch failed for {URL}"))
    with pytest.raises(RpcUnavailable) as info:
        await make_client().call("eth_chainId", [])
    assert info.value.failures[0].reason == "transport error: JsException"
    assert len(httpx_mock.get_requests()) == 1  # not retried: the endpoint is unusable
    assert_no_secret(str(info.value), "".join(traceback.format_exception(info.value)))


async def test_call_error_never_contains_the_url(httpx_mock: HTTPXMock, make_client: Callable) -> None:
    httpx_mock.add_callback(node(error(3, "execution reverted")))
    with pytest.raises(RpcCallError) as info:
        await make_client().call("eth_call", [])
    assert_no_secret(str(info.value), repr(info.value), repr(vars(info.value)))


# --- backoff --------------------------------------------------------------------------------------


async def test_backoff_delays_grow(httpx_mock: HTTPXMock, make_client: Callable, sleeps: SleepRecorder) -> None:
    httpx_mock.add_response(status_code=500, is_reusable=True)
    with pytest.raises(RpcUnavailable):
        await make_client(retries=4, backoff_base=0.1, backoff_max=10).call("eth_chainId", [])
    assert len(sleeps.delays) == 4
    assert all(a < b for a, b in zip(sleeps.delays, sleeps.delays[1:], strict=False))
    for n, delay in enumerate(sleeps.delays):
        assert 0.1 * 2**n <= delay <= 0.1 * 2**n * 1.1


async def test_backoff_is_capped(httpx_mock: HTTPXMock, make_client: Callable, sleeps: SleepRecorder) -> None:
    httpx_mock.add_response(status_code=500, is_reusable=True)
    with pytest.raises(RpcUnavailable):
        await make_client(retries=6, backoff_base=0.2, backoff_max=1.0).call("eth_chainId", [])
    assert max(sleeps.delays) <= 1.0
    assert sleeps.delays[-1] == 1.0


async def test_backoff_only_between_rounds_over_all_endpoints(
    httpx_mock: HTTPXMock, make_client: Callable, sleeps: SleepRecorder
) -> None:
    httpx_mock.add_response(status_code=502, is_reusable=True)
    with pytest.raises(RpcUnavailable):
        await make_client([URL, URL2], retries=2, backoff_base=0.1).call("eth_chainId", [])
    assert len(httpx_mock.get_requests()) == 6
    # Failing over costs no wait; each new round over both endpoints waits longer than the last.
    assert len(sleeps.delays) == 2
    assert 0.1 <= sleeps.delays[0] <= 0.11 and 0.2 <= sleeps.delays[1] <= 0.22


async def test_retries_zero_means_one_attempt_per_endpoint(httpx_mock: HTTPXMock, make_client: Callable) -> None:
    httpx_mock.add_response(status_code=500, is_reusable=True)
    with pytest.raises(RpcUnavailable):
        await make_client([URL, URL2], retries=0).call("eth_chainId", [])
    assert len(httpx_mock.get_requests()) == 2


def test_constructor_validates(http: httpx.AsyncClient) -> None:
    with pytest.raises(ValueError):
        JsonRpcClient([], http=http)
    with pytest.raises(ValueError):
        JsonRpcClient([URL], http=http, timeout=0)
    with pytest.raises(ValueError):
        JsonRpcClient([URL], http=http, retries=-1)
    assert JsonRpcClient([URL, URL2], http=http).hosts == ["eth.example", "backup.example:8443"]


# --- hex helpers ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "number"),
    [
        ("0x0", 0),
        ("0x1", 1),
        ("0x00", 0),
        ("0x01b4", 436),
        ("0xDE0B6B3A7640000", 10**18),
        ("0x" + "f" * 64, 2**256 - 1),
    ],
)
def test_parse_quantity(value: str, number: int) -> None:
    assert parse_quantity(value) == number


@pytest.mark.parametrize(
    "value",
    [
        "0x",
        "",
        "1b4",
        "0X1",
        "0x-1",
        "0x 1",
        " 0x1",
        "0x1 ",
        "0x1_0",
        "0xg",
        "0x" + "1" + "0" * 64,
        1,
        None,
        True,
        b"0x1",
    ],
)
def test_parse_quantity_rejects(value: Any) -> None:
    with pytest.raises(MalformedValue):
        parse_quantity(value)
    assert issubclass(MalformedValue, ValueError)


def test_to_quantity() -> None:
    assert to_quantity(0) == "0x0"
    assert to_quantity(436) == "0x1b4"
    assert to_quantity(2**256 - 1) == "0x" + "f" * 64
    for bad in [-1, True, 1.0, "1"]:
        with pytest.raises(ValueError):
            to_quantity(bad)  # type: ignore[arg-type]


@pytest.mark.parametrize(("value", "data"), [("0x", b""), ("0x00", b"\x00"), ("0xABcd", b"\xab\xcd")])
def test_parse_data(value: str, data: bytes) -> None:
    assert parse_data(value) == data
    assert to_data(data) == value.lower()


@pytest.mark.parametrize("value", ["", "0x0", "0x123", "abcd", "0xab cd", "0x zz", "0Xab", None, 12, b"0x"])
def test_parse_data_rejects(value: Any) -> None:
    with pytest.raises(MalformedValue):
        parse_data(value)
