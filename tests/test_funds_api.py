"""POST /gatekeeper/v2/funds/check and GET /gatekeeper/v2/networks over a mocked node: input rules, RPC failures.

Every RPC answer here comes from pytest-httpx; nothing leaves the process. The endpoints carry a fake API
key in their path so each test can also check that no URL leaks into responses or logs.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from pytest_httpx import HTTPXMock

from chain.networks import Network, rpc_endpoints
from chain.rpc import JsonRpcClient
from core.context import Services
from core.errors import ApiError
from core.logging import MemoryLogSink
from gatekeeper import funds
from tests.support.client import ApiClient

CHECK = "/gatekeeper/v2/funds/check"
NETWORKS = "/gatekeeper/v2/networks"
ENDPOINTS = "https://rpc-a.test/v2/KEY123,https://rpc-b.test"
SECRETS = ("KEY123", "rpc-a.test/v2", "https://")
WALLET = "0x" + "ab" * 20
TOKEN = "0x" + "cd" * 20
BLOCK = 0x1234
BALANCE = 10**18 + 4321  # the node's answer for every balance read

Responder = Callable[[httpx.Request], httpx.Response]


@pytest.fixture(autouse=True)
def fast_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    # Same retry count as production, without the waits between attempts.
    monkeypatch.setattr(funds, "RPC_POLICY", funds.RpcPolicy(retries=2, backoff_base=0.0, backoff_max=0.0))


@pytest.fixture
def extra_env() -> dict[str, str | None]:
    """Per-test configuration changes (None removes a variable); override with @pytest.mark.parametrize."""
    return {}


@pytest.fixture
def rpc_env(env_vars: dict[str, str], extra_env: dict[str, str | None]) -> dict[str, str]:
    # Applied before `client`/`services` are built, since tests list this fixture first.
    env_vars["RPC_URL_ETH_MAINNET"] = ENDPOINTS
    env_vars["RPC_PUBLIC_FALLBACKS"] = "false"
    env_vars["RPC_TIMEOUT_SECONDS"] = "0.5"
    # Each check asks for the head first; the one-request warm path is tested in test_funds_chain.py.
    env_vars["FUNDS_BLOCK_MAX_AGE_SECONDS"] = "0"
    for name, value in extra_env.items():
        if value is None:
            env_vars.pop(name, None)
        else:
            env_vars[name] = value
    return env_vars


@pytest.fixture
def api(rpc_env: dict[str, str], client: ApiClient) -> ApiClient:
    return client


class FakeNode:
    """A well-behaved eth-mainnet node; `fault` may replace the answer to any request."""

    def __init__(self, *, chain_id: int = 1, code: str = "0x6080", call_result: str | None = None) -> None:
        self.chain_id = chain_id
        self.code = code
        self.call_result = call_result if call_result is not None else "0x" + BALANCE.to_bytes(32, "big").hex()
        self.requests: list[tuple[str, Any]] = []
        self.fault: Callable[[httpx.Request, Any, int], httpx.Response | None] | None = None

    def result(self, call: dict[str, Any]) -> Any:
        method = call["method"]
        if method == "eth_blockNumber":
            return hex(BLOCK)
        if method == "eth_chainId":
            return hex(self.chain_id)
        if method == "eth_getBalance":
            return hex(BALANCE)
        if method == "eth_getCode":
            return self.code
        if method == "eth_call":
            return self.call_result
        raise AssertionError(f"unexpected method {method}")

    def answer(self, payload: Any) -> Any:
        if isinstance(payload, list):
            return [{"jsonrpc": "2.0", "id": call["id"], "result": self.result(call)} for call in payload]
        return {"jsonrpc": "2.0", "id": payload["id"], "result": self.result(payload)}

    def __call__(self, request: httpx.Request) -> httpx.Response:
        payload = json.loads(request.content)
        self.requests.append((request.url.host, payload))
        if self.fault is not None:
            replaced = self.fault(request, payload, len(self.requests))
            if replaced is not None:
                return replaced
        return httpx.Response(200, json=self.answer(payload))

    def hosts(self) -> list[str]:
        return [host for host, _ in self.requests]


@pytest.fixture
def node(httpx_mock: HTTPXMock) -> FakeNode:
    fake = FakeNode()
    httpx_mock.add_callback(fake, is_reusable=True, is_optional=True)
    return fake


def native(**overrides: Any) -> dict[str, Any]:
    return {"wallet_address": WALLET, "network": "eth-mainnet", "asset_type": "NATIVE", "min_balance": "1", **overrides}


def erc20(**overrides: Any) -> dict[str, Any]:
    return native(**{"asset_type": "ERC20", "token_address": TOKEN, **overrides})


def assert_no_leaks(text: str) -> None:
    for secret in SECRETS:
        assert secret not in text
    assert str(BALANCE) not in text
    assert hex(BALANCE)[2:] not in text
    assert "Traceback" not in text


async def attestation_count(services: Services) -> int:
    return await services.db.prepare("SELECT COUNT(*) AS n FROM funds_attestations").first("n")


# -- happy path over the mock ----------------------------------------------------------------------------


async def test_check_reads_at_one_block_in_two_requests(api: ApiClient, node: FakeNode) -> None:
    response = await api.post(CHECK, json=erc20(min_balance=str(BALANCE)))
    assert response.status == 200, response.text
    body = response.json()
    assert body["status"] == "PASSED"
    assert body["provider"] == "rpc-a.test"
    assert body["block_number"] == BLOCK
    assert [host for host in node.hosts()] == ["rpc-a.test", "rpc-a.test"]
    first, second = (payload for _, payload in node.requests)
    # An endpoint met for the first time: its chain id rides with its head, in one request.
    assert [call["method"] for call in first] == ["eth_chainId", "eth_blockNumber"]
    methods = [call["method"] for call in second]
    assert methods == ["eth_blockNumber", "eth_getCode", "eth_call"]
    assert all(call["params"][-1] == hex(BLOCK) for call in second[1:])


# -- RPC failures: every one a 502 E2004 (or a success after failover), never a 500 or a hang ---------------


def http_status(status: int) -> Callable[[httpx.Request, Any, int], httpx.Response]:
    return lambda request, payload, n: httpx.Response(status, text="upstream broke")


def timeout(request: httpx.Request, payload: Any, n: int) -> httpx.Response:
    raise httpx.ReadTimeout("timed out", request=request)


def not_json(request: httpx.Request, payload: Any, n: int) -> httpx.Response:
    return httpx.Response(200, text="<html>gateway</html>")


def error_object(request: httpx.Request, payload: Any, n: int) -> httpx.Response:
    error = {"code": -32603, "message": "internal error"}
    if isinstance(payload, list):
        return httpx.Response(200, json=[{"jsonrpc": "2.0", "id": call["id"], "error": error} for call in payload])
    return httpx.Response(200, json={"jsonrpc": "2.0", "id": payload["id"], "error": error})


def wrong_id(request: httpx.Request, payload: Any, n: int) -> httpx.Response:
    if isinstance(payload, list):
        return httpx.Response(
            200, json=[{"jsonrpc": "2.0", "id": call["id"] + 1000, "result": "0x1"} for call in payload]
        )
    return httpx.Response(200, json={"jsonrpc": "2.0", "id": payload["id"] + 1000, "result": "0x1"})


def missing_result(request: httpx.Request, payload: Any, n: int) -> httpx.Response:
    if isinstance(payload, list):
        return httpx.Response(200, json=[{"jsonrpc": "2.0", "id": call["id"]} for call in payload])
    return httpx.Response(200, json={"jsonrpc": "2.0", "id": payload["id"]})


def make_batch_missing_one(node: FakeNode) -> Callable[[httpx.Request, Any, int], httpx.Response | None]:
    def fault(request: httpx.Request, payload: Any, n: int) -> httpx.Response | None:
        if not isinstance(payload, list) or payload[-1]["method"] != "eth_call":
            return None  # the head (and chain id) answer fine
        return httpx.Response(200, json=node.answer(payload)[:-1])

    return fault


@pytest.mark.parametrize(
    ("name", "fault", "attempts"),
    [
        ("timeout", timeout, 6),
        ("http 500", http_status(500), 6),
        ("http 503", http_status(503), 6),
        ("not json", not_json, 6),
        ("json-rpc error object", error_object, 6),
        ("wrong id", wrong_id, 6),
        ("missing result", missing_result, 6),
        # Each attempt is the endpoint's own head (answered) and then its batch (failing): 2 requests,
        # 3 rounds over rpc-a and rpc-b.
        ("batch missing an answer", None, 12),
    ],
)
async def test_rpc_failures_are_502_e2004(
    api: ApiClient,
    node: FakeNode,
    services: Services,
    log_sink: MemoryLogSink,
    caplog: pytest.LogCaptureFixture,
    name: str,
    fault: Callable[[httpx.Request, Any, int], httpx.Response] | None,
    attempts: int,
) -> None:
    caplog.set_level(logging.DEBUG)
    node.fault = fault or make_batch_missing_one(node)
    response = await api.post(CHECK, json=erc20())
    assert response.status == 502, name
    assert response.error_code == "E2004"
    assert response.json()["error"]["details"] == {"network": "eth-mainnet"}
    # Failover (rpc-a, then rpc-b) and retries (3 rounds over both) really happened.
    assert len(node.requests) == attempts
    assert node.hosts()[-1] == "rpc-b.test"
    assert await attestation_count(services) == 0
    assert_no_leaks(response.text + "\n".join(log_sink.lines) + caplog.text)
    warning = next(record for record in log_sink.records() if record["event"] == "funds_rpc_unavailable")
    assert warning["network"] == "eth-mainnet" and warning["host"] == "rpc-b.test"


async def test_first_endpoint_down_second_answers(api: ApiClient, node: FakeNode, services: Services) -> None:
    def down(request: httpx.Request, payload: Any, n: int) -> httpx.Response | None:
        if request.url.host == "rpc-a.test":
            raise httpx.ConnectError("connection refused", request=request)
        return None

    node.fault = down
    response = await api.post(CHECK, json=native(min_balance=str(BALANCE + 1)))
    assert response.status == 200, response.text
    assert response.json()["status"] == "FAILED"
    assert response.json()["provider"] == "rpc-b.test"
    row = await services.db.prepare("SELECT provider_host FROM funds_attestations").first()
    assert row == {"provider_host": "rpc-b.test"}


async def test_a_block_the_endpoint_lacks_fails_over_to_the_next(api: ApiClient, node: FakeNode) -> None:
    def flaky(request: httpx.Request, payload: Any, n: int) -> httpx.Response | None:
        if n == 2:  # the batch's first attempt: a lagging backend behind the head it just reported
            return httpx.Response(
                200, json=[{"jsonrpc": "2.0", "id": c["id"], "error": {"code": -32000, "message": "header not found"}}
                           for c in payload]
            )  # fmt: skip
        return None

    node.fault = flaky
    response = await api.post(CHECK, json=native())
    assert response.status == 200, response.text
    # Not the caller's error: the next endpoint reads at its own head.
    assert response.json()["provider"] == "rpc-b.test"
    assert node.hosts() == ["rpc-a.test", "rpc-a.test", "rpc-b.test", "rpc-b.test"]


async def test_a_failing_endpoint_waits_behind_the_healthy_one_between_checks(
    monkeypatch: pytest.MonkeyPatch, api: ApiClient, node: FakeNode, services: Services
) -> None:
    """Issue 14 item 3: health is remembered per isolate, so a down provider costs one attempt, not every check."""
    monkeypatch.setattr(funds, "RPC_POLICY", funds.RpcPolicy(backoff_base=0.0, backoff_max=0.0, hedge_delay=None))
    down = {"rpc-a.test"}

    def refused(request: httpx.Request, payload: Any, n: int) -> httpx.Response | None:
        if request.url.host in down:
            raise httpx.ConnectError("connection refused", request=request)
        return None

    node.fault = refused
    first = await api.post(CHECK, json=native())
    assert first.json()["provider"] == "rpc-b.test"
    assert node.hosts() == ["rpc-a.test", "rpc-b.test", "rpc-b.test"]
    node.requests.clear()
    for _ in range(5):
        assert (await api.post(CHECK, json=native())).json()["provider"] == "rpc-b.test"
    # rpc-b's chain id is known: its head, then its batch; rpc-a is not even tried.
    assert node.hosts() == ["rpc-b.test"] * 10
    # After the cool-down rpc-a gets its place back, fails twice more across two checks, and its breaker opens.
    for _ in range(2):
        services.clock.advance(10)
        assert (await api.post(CHECK, json=native())).status == 200
    node.requests.clear()
    services.clock.advance(9)
    down.clear()  # back up, but the breaker stays open until its cool-down ends
    await api.post(CHECK, json=native())
    assert node.hosts() == ["rpc-b.test"] * 2
    services.clock.advance(2)  # half-open: this check probes rpc-a, which answers: closed again
    node.requests.clear()
    assert (await api.post(CHECK, json=native())).json()["provider"] == "rpc-a.test"
    assert (await api.post(CHECK, json=native())).json()["provider"] == "rpc-a.test"


@pytest.mark.parametrize(
    "message", ["BlockOutOfRangeError: block height is 5 but requested was 4660", "unknown block", "missing trie node"]
)
async def test_a_block_out_of_range_answer_is_never_the_callers_error(
    api: ApiClient, node: FakeNode, message: str
) -> None:
    def behind_on_a(request: httpx.Request, payload: Any, n: int) -> httpx.Response | None:
        if request.url.host == "rpc-a.test" and isinstance(payload, list) and len(payload) > 2:
            # -32602 "invalid params", as anvil answers a read above its head.
            error = {"code": -32602, "message": message}
            return httpx.Response(200, json=[{"jsonrpc": "2.0", "id": c["id"], "error": error} for c in payload])
        return None

    node.fault = behind_on_a
    response = await api.post(CHECK, json=erc20())
    assert response.status == 200, response.text
    assert response.json()["provider"] == "rpc-b.test"


async def test_an_endpoint_on_the_wrong_chain_is_skipped(
    api: ApiClient, node: FakeNode, log_sink: MemoryLogSink
) -> None:
    def sepolia_on_a(request: httpx.Request, payload: Any, n: int) -> httpx.Response | None:
        if request.url.host == "rpc-a.test" and isinstance(payload, list):
            answer = node.answer(payload)
            chain_ids = {call["id"] for call in payload if call["method"] == "eth_chainId"}
            for item in answer:
                if item["id"] in chain_ids:
                    item["result"] = hex(11155111)
            return httpx.Response(200, json=answer)
        return None

    node.fault = sepolia_on_a
    response = await api.post(CHECK, json=native())
    assert response.status == 200, response.text
    assert response.json()["provider"] == "rpc-b.test"
    assert any(record["event"] == "funds_rpc_wrong_chain" for record in log_sink.records())


async def test_a_node_on_the_wrong_chain_everywhere_is_502(api: ApiClient, httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_callback(FakeNode(chain_id=5), is_reusable=True)
    response = await api.post(CHECK, json=native())
    assert response.status == 502
    assert response.error_code == "E2004"


@pytest.mark.parametrize("extra_env", [{"RPC_TIMEOUT_SECONDS": "0.1"}])
async def test_a_hanging_node_times_out(api: ApiClient, httpx_mock: HTTPXMock) -> None:
    async def hang(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(30)
        raise AssertionError("never answered")

    httpx_mock.add_callback(hang, is_reusable=True)
    started = time.monotonic()
    response = await api.post(CHECK, json=native())
    assert response.status == 502
    assert response.error_code == "E2004"
    # 2 endpoints x 3 attempts x 0.1 s, and nothing more.
    assert time.monotonic() - started < 3


@pytest.mark.parametrize("extra_env", [{"RPC_TIMEOUT_SECONDS": "30"}])
async def test_the_whole_check_has_a_deadline(
    rpc_env: dict[str, str], services: Services, httpx_mock: HTTPXMock
) -> None:
    async def hang(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(30)
        raise AssertionError("never answered")

    httpx_mock.add_callback(hang, is_reusable=True, is_optional=True)
    requirement = funds.build_requirement(
        services.env, wallet_address=WALLET, network="eth-mainnet", asset_type="NATIVE", min_balance="1"
    )
    started = time.monotonic()
    with pytest.raises(ApiError) as caught:
        await funds.check_requirements(services, [requirement], deadline=0.2)
    assert caught.value.code == "E2004"
    assert time.monotonic() - started < 2


async def test_retries_back_off_exponentially(
    rpc_env: dict[str, str], services: Services, httpx_mock: HTTPXMock
) -> None:
    httpx_mock.add_callback(lambda request: httpx.Response(503), is_reusable=True)
    delays: list[float] = []

    async def record(delay: float) -> None:
        delays.append(delay)

    def factory(network: Network) -> JsonRpcClient:
        endpoints = rpc_endpoints(network, services.env)
        return JsonRpcClient(endpoints, http=services.http, retries=2, backoff_base=0.2, sleep=record)

    requirement = funds.build_requirement(
        services.env, wallet_address=WALLET, network="eth-mainnet", asset_type="NATIVE", min_balance="1"
    )
    with pytest.raises(ApiError) as caught:
        await funds.check_requirements(services, [requirement], rpc_factory=factory)
    assert caught.value.code == "E2004"
    assert len(httpx_mock.get_requests()) == 6
    # Three rounds over both endpoints: failing over waits for nothing, each new round about twice the last.
    assert len(delays) == 2
    assert 0.2 <= delays[0] <= 0.22 and 0.4 <= delays[1] <= 0.44


# -- tokens that are not tokens: 400 E2007 -------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "call_result", "revert"),
    [
        ("0x", "0x", False),  # no contract at that address
        ("0x6080", "0x", False),  # a contract whose fallback answers nothing
        ("0x6080", "0x" + "00" * 16, False),  # a short answer
        ("0x6080", None, True),  # balanceOf reverts
    ],
)
async def test_bad_tokens_are_400_e2007(
    api: ApiClient, node: FakeNode, services: Services, code: str, call_result: str | None, revert: bool
) -> None:
    node.code = code
    if call_result is not None:
        node.call_result = call_result

    def reverting(request: httpx.Request, payload: Any, n: int) -> httpx.Response | None:
        if not revert or not isinstance(payload, list) or payload[-1]["method"] != "eth_call":
            return None
        answer = node.answer(payload)
        answer[-1] = {"jsonrpc": "2.0", "id": payload[-1]["id"], "error": {"code": 3, "message": "execution reverted"}}
        return httpx.Response(200, json=answer)

    node.fault = reverting
    response = await api.post(CHECK, json=erc20())
    assert response.status == 400, response.text
    assert response.error_code == "E2007"
    assert response.json()["error"]["details"]["token_address"] == TOKEN
    # A deterministic answer: no retries, no failover.
    assert len(node.requests) == 2
    assert await attestation_count(services) == 0


# -- bad input: documented 4xx, and not a single RPC request --------------------------------------------


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (native(min_balance="-1"), "E2005"),
        (native(min_balance="1.5"), "E2005"),
        (native(min_balance="1e18"), "E2005"),
        (native(min_balance="0x10"), "E2005"),
        (native(min_balance="+5"), "E2005"),
        (native(min_balance=str(2**256)), "E2005"),
        (native(min_balance="1" * 79), "E2005"),
        (native(min_balance=5), "E2005"),
        (native(min_balance=1000000000000000000000), "E2005"),
        (native(min_balance=1.0), "E2005"),
        (native(min_balance=None), "E2005"),
        (native(network="solana"), "E2002"),
        (native(network="local"), "E2002"),
        (native(network=1), "E2002"),
        (native(asset_type="ERC20"), "E2003"),
        (erc20(token_address="0xnope"), "E2007"),
        (erc20(token_address="0x" + "0" * 40), "E2007"),
        (native(token_address=TOKEN), "E9004"),
        (native(wallet_address="0x1234"), "E2001"),
        (native(wallet_address="0x742d35cc6634C0532925a3b844Bc454e4438f44e"), "E2001"),
        (native(wallet_address=["0x"]), "E2001"),
        (native(asset_type="BTC"), "E9004"),
        (native(surprise=True), "E9004"),
        ({"network": "eth-mainnet", "asset_type": "NATIVE", "min_balance": "1"}, "E9004"),
    ],
)
async def test_bad_input_is_a_documented_4xx_without_rpc(
    api: ApiClient, httpx_mock: HTTPXMock, services: Services, body: dict[str, Any], code: str
) -> None:
    response = await api.post(CHECK, json=body)
    assert response.status == 400, response.text
    assert response.error_code == code
    assert httpx_mock.get_requests() == []
    assert await attestation_count(services) == 0


async def test_a_json_number_threshold_is_refused_with_the_field_named(api: ApiClient) -> None:
    response = await api.post(CHECK, json=native(min_balance=100))
    assert response.error_code == "E2005"
    assert response.json()["error"]["details"] == {"field": "min_balance"}
    assert "string" in response.json()["error"]["message"]


# -- auth, flag, challenge linking -------------------------------------------------------------------------


async def test_anonymous_and_signed_in_callers_are_recorded(
    api: ApiClient, node: FakeNode, services: Services, make_user: Callable[..., Any]
) -> None:
    user_id, api_key = await make_user()
    assert (await api.post(CHECK, json=native())).status == 200
    assert (await api.post(CHECK, json=native(), token=api_key)).status == 200
    rows = await services.db.prepare("SELECT requested_by FROM funds_attestations ORDER BY rowid").all()
    assert [row["requested_by"] for row in rows.results] == [None, user_id]


async def test_an_invalid_bearer_is_refused(api: ApiClient, httpx_mock: HTTPXMock) -> None:
    response = await api.post(CHECK, json=native(), token="thk_not-a-key")
    assert response.status == 401
    assert response.error_code == "E9006"


@pytest.mark.parametrize("extra_env", [{"FF_GATEKEEPER_V2": "false"}])
async def test_flag_off_is_503(api: ApiClient, httpx_mock: HTTPXMock) -> None:
    assert (await api.post(CHECK, json=native())).error_code == "E9010"
    assert (await api.get(NETWORKS)).error_code == "E9010"


async def create_challenge(services: Services, creator: str, counterparty: str | None) -> str:
    challenge_id = "5b0a3c1e-9f1d-4c55-8a43-0f6f0d1b2c3d"
    await (
        services.db.prepare(
            "INSERT INTO challenges (id, mode, status, title, creator_user_id, counterparty_user_id, created_at, "
            "updated_at) VALUES (?, 'GATEKEEPER', 'DRAFT', 'Funds test', ?, ?, ?, ?)"
        )
        .bind(challenge_id, creator, counterparty, "2026-11-24T12:00:00.000Z", "2026-11-24T12:00:00.000Z")
        .run()
    )
    return challenge_id


async def test_linking_to_a_challenge_needs_a_party(
    api: ApiClient, node: FakeNode, services: Services, make_user: Callable[..., Any]
) -> None:
    creator, creator_key = await make_user()
    counterparty, counterparty_key = await make_user()
    _, outsider_key = await make_user()
    challenge_id = await create_challenge(services, creator, counterparty)

    for key in (creator_key, counterparty_key):
        response = await api.post(CHECK, json=native(challenge_id=challenge_id), token=key)
        assert response.status == 200, response.text
    outsider = await api.post(CHECK, json=native(challenge_id=challenge_id), token=outsider_key)
    unknown = await api.post(CHECK, json=native(challenge_id="00000000-0000-4000-8000-000000000000"), token=creator_key)
    anonymous = await api.post(CHECK, json=native(challenge_id=challenge_id))
    assert (outsider.status, outsider.error_code) == (404, "E3010")
    assert (unknown.status, unknown.error_code) == (404, "E3010")
    # Same body for "exists but not yours" and "does not exist" (apart from the id echoed back).
    assert outsider.json()["error"]["message"] == unknown.json()["error"]["message"]
    assert (anonymous.status, anonymous.error_code) == (401, "E9005")

    rows = await services.db.prepare("SELECT challenge_id, requested_by FROM funds_attestations ORDER BY rowid").all()
    assert rows.results == [
        {"challenge_id": challenge_id, "requested_by": creator},
        {"challenge_id": challenge_id, "requested_by": counterparty},
    ]
    # Refusals cost no node requests: 2 per successful check only.
    assert len(node.requests) == 4


# -- GET /gatekeeper/v2/networks ---------------------------------------------------------------------


async def test_networks_lists_usable_networks_without_urls(api: ApiClient, rpc_env: dict[str, str]) -> None:
    response = await api.get(NETWORKS)
    assert response.status == 200
    assert response.json() == {
        "networks": [
            {"name": "eth-mainnet", "chain_id": 1, "caip2": "eip155:1", "native_symbol": "ETH", "is_testnet": False}
        ]
    }
    assert_no_leaks(response.text)
    assert "rpc-a" not in response.text


SEED_NAMES = {
    "RPC_URL_ETH_MAINNET": None,
    "RPC_BASE_MAIN": "https://base.test/KEY123",
    "WEB3_RPC_URL_POLYGON": "https://polygon.test/KEY123",
    "RPC_URL_LOCAL": "http://127.0.0.1:8545",
}


@pytest.mark.parametrize("extra_env", [SEED_NAMES])
async def test_networks_honours_seed_names_and_local(api: ApiClient) -> None:
    response = await api.get(NETWORKS)
    names = [network["name"] for network in response.json()["networks"]]
    assert names == ["base-mainnet", "polygon-mainnet", "local"]
    assert "KEY123" not in response.text and "8545" not in response.text


@pytest.mark.parametrize("extra_env", [{**SEED_NAMES, "RPC_PUBLIC_FALLBACKS": None}])
async def test_networks_include_public_fallbacks_unless_disabled(api: ApiClient) -> None:
    response = await api.get(NETWORKS)
    names = [network["name"] for network in response.json()["networks"]]
    assert names == [
        "eth-mainnet",
        "base-mainnet",
        "polygon-mainnet",
        "arbitrum-one",
        "optimism-mainnet",
        "bsc-mainnet",
        "eth-sepolia",
        "base-sepolia",
        "local",
    ]
    assert "publicnode" not in response.text and "KEY123" not in response.text


async def test_openapi_documents_the_funds_routes(api: ApiClient) -> None:
    document = (await api.get("/openapi.json")).json()
    operation = document["paths"][CHECK]["post"]
    assert {"200", "400", "404", "502"} <= set(operation["responses"])
    assert "E2005" in operation["responses"]["400"]["description"]
    schema = document["components"]["schemas"]["FundsCheckRequest"]
    assert schema["properties"]["min_balance"]["type"] == "string"
    assert schema["properties"]["min_balance"]["pattern"] == "^[0-9]{1,78}$"
    assert NETWORKS in document["paths"]


@pytest.mark.parametrize("extra_env", [{"HMAC_SECRET": None}, {"HMAC_SECRET": "too-short"}])
async def test_without_the_commitment_key_no_check_runs(api: ApiClient, node: FakeNode, services: Services) -> None:
    """The balance commitment is keyed from HMAC_SECRET: without it, a clear 500 before any node request."""
    response = await api.post(CHECK, json=native())
    assert (response.status, response.error_code) == (500, "E9001")
    assert response.json()["error"]["details"]["variable"] == "HMAC_SECRET"
    assert node.requests == []
    assert await attestation_count(services) == 0
