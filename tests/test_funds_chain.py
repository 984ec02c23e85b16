"""Proof of funds against a real anvil chain: thresholds, ERC-20s, pinning, request count, privacy, attestations."""

from __future__ import annotations

import hashlib
import hmac
import http.server
import json
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from api.jobs import run_scheduled
from chain.address import to_checksum_address
from chain.networks import network_by_name
from core.config import Env
from core.context import Services
from core.logging import MemoryLogSink
from gatekeeper import funds
from local.anvil import AnvilNode
from tests.conftest import ADMIN_TOKEN, HMAC_SECRET
from tests.support.client import ApiClient
from tests.support.contracts import deploy, transact

CHECK = "/gatekeeper/v2/funds/check"


def new_wallet() -> str:
    return "0x" + secrets.token_hex(20)


class InFlight:
    """Counts requests in progress across proxies, remembering the peak."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.current = 0
        self.peak = 0

    def __enter__(self) -> None:
        with self._lock:
            self.current += 1
            self.peak = max(self.peak, self.current)

    def __exit__(self, *exc: object) -> None:
        with self._lock:
            self.current -= 1


class CountingProxy:
    """An HTTP proxy on 127.0.0.1 in front of a node: records every request body the app sends.

    It sees what goes over the wire, independently of the client, so counting here is an honest count
    of HTTP requests. `after` runs after a request was answered (e.g. to change the chain in between).
    """

    def __init__(self, upstream: str, *, delay: float = 0.0, in_flight: InFlight | None = None) -> None:
        self.upstream = upstream
        self.delay = delay
        self.in_flight = in_flight or InFlight()
        self.payloads: list[Any] = []
        self.after: Callable[[int], None] | None = None
        self._http = httpx.Client(timeout=10.0, trust_env=False)
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                with proxy.in_flight:
                    proxy.payloads.append(json.loads(body))
                    number = len(proxy.payloads)
                    time.sleep(proxy.delay)
                    answer = proxy._http.post(
                        proxy.upstream, content=body, headers={"content-type": "application/json"}
                    )
                if proxy.after is not None:
                    proxy.after(number)
                self.send_response(answer.status_code)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(answer.content)))
                self.end_headers()
                self.wfile.write(answer.content)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        # A short poll interval: shutdown() waits for the loop to notice, 0.5 s per proxy by default.
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.02,), daemon=True)

    def __enter__(self) -> CountingProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._http.close()


@pytest.fixture
def proxy(chain: AnvilNode) -> Iterator[CountingProxy]:
    with CountingProxy(chain.url) as counting:
        yield counting


@pytest.fixture
def chain_env(env_vars: dict[str, str], proxy: CountingProxy) -> dict[str, str]:
    # Before `client`/`services` in every test's arguments, so the app is built with it.
    env_vars["RPC_URL_LOCAL"] = proxy.url
    env_vars["RPC_PUBLIC_FALLBACKS"] = "false"
    env_vars["RPC_TIMEOUT_SECONDS"] = "5"
    # Every check here asks for the head first (cold): these tests deploy and mine between checks.
    # The warm path (one request, pinned to a recently seen head) has its own test below.
    env_vars["FUNDS_BLOCK_MAX_AGE_SECONDS"] = "0"
    return env_vars


@pytest.fixture
def api(chain_env: dict[str, str], client: ApiClient) -> ApiClient:
    return client


@pytest.fixture
def token(chain: AnvilNode) -> str:
    return deploy(chain, "TestToken").lower()


def native(wallet: str, min_balance: int | str, **extra: Any) -> dict[str, Any]:
    return {
        "wallet_address": wallet,
        "network": "local",
        "asset_type": "NATIVE",
        "min_balance": str(min_balance),
        **extra,
    }


def erc20(wallet: str, token: str, min_balance: int | str, **extra: Any) -> dict[str, Any]:
    return {**native(wallet, min_balance, **extra), "asset_type": "ERC20", "token_address": token}


async def attestation(services: Services, attestation_id: str) -> dict[str, Any]:
    return await services.db.prepare("SELECT * FROM funds_attestations WHERE id = ?").bind(attestation_id).first()


# -- thresholds -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("balance", "min_balance", "status"),
    [
        (10**18, 10**18, "PASSED"),  # balance == min
        (10**18, 10**18 + 1, "FAILED"),  # balance == min - 1
        (10**18, 1, "PASSED"),
        (0, 0, "PASSED"),
        (0, 1, "FAILED"),
        (2**200, 2**256 - 1, "FAILED"),  # the largest threshold there is
    ],
)
async def test_native_threshold(
    api: ApiClient, chain: AnvilNode, proxy: CountingProxy, balance: int, min_balance: int, status: str
) -> None:
    wallet = new_wallet()
    chain.set_balance(wallet, balance)
    response = await api.post(CHECK, json=native(wallet, min_balance))
    assert response.status == 200, response.text
    body = response.json()
    assert body["status"] == status
    assert body["proof_type"] == "OPAQUE_V1"
    assert body["network"] == "local"
    assert body["block_number"] == chain.block_number()
    # The host that answered, never the URL.
    assert body["provider"] == proxy.url.removeprefix("http://")


@pytest.mark.parametrize(
    ("balance", "min_balance", "status"),
    [
        (5 * 10**18, 5 * 10**18, "PASSED"),
        (5 * 10**18, 5 * 10**18 + 1, "FAILED"),
        (0, 0, "PASSED"),
        (0, 1, "FAILED"),
    ],
)
async def test_erc20_threshold(
    api: ApiClient, chain: AnvilNode, token: str, balance: int, min_balance: int, status: str
) -> None:
    holder = new_wallet()
    transact(chain, token, "setBalance", [holder, balance])
    response = await api.post(CHECK, json=erc20(holder, token, min_balance))
    assert response.status == 200, response.text
    assert response.json()["status"] == status


async def test_mixed_case_addresses_must_be_valid_checksums(api: ApiClient, chain: AnvilNode, token: str) -> None:
    holder = chain.accounts[3]  # anvil returns dev accounts in lowercase
    transact(chain, token, "setBalance", [holder, 7])
    good = await api.post(CHECK, json=erc20(to_checksum_address(holder), to_checksum_address(token), 7))
    assert good.status == 200, good.text
    assert good.json()["status"] == "PASSED"
    swapped = to_checksum_address(holder)
    # Flip the case of one letter: still hex, no longer the checksum.
    index = next(i for i, ch in enumerate(swapped) if i > 1 and ch.isalpha())
    broken = swapped[:index] + swapped[index].swapcase() + swapped[index + 1 :]
    bad = await api.post(CHECK, json=erc20(broken, token, 7))
    assert (bad.status, bad.error_code) == (400, "E2001")


async def test_not_a_token_is_400_e2007(api: ApiClient, chain: AnvilNode, services: Services) -> None:
    wallet = new_wallet()
    no_code = await api.post(CHECK, json=erc20(wallet, new_wallet(), 1))
    feed = deploy(chain, "PriceFeed")  # a contract without balanceOf: the call reverts
    reverts = await api.post(CHECK, json=erc20(wallet, feed, 1))
    for response in (no_code, reverts):
        assert (response.status, response.error_code) == (400, "E2007"), response.text
    assert "no contract code" in no_code.json()["error"]["message"]
    assert "balanceOf" in reverts.json()["error"]["message"]
    assert await services.db.prepare("SELECT COUNT(*) AS n FROM funds_attestations").first("n") == 0


# -- pinning and request count ------------------------------------------------------------------------------


async def test_reads_are_pinned_to_the_first_block_number(
    chain_env: dict[str, str], services: Services, chain: AnvilNode, proxy: CountingProxy, token: str
) -> None:
    wallet = chain.accounts[4]
    holder = new_wallet()
    transact(chain, token, "setBalance", [holder, 1000])
    balance = chain.get_balance(wallet)
    pinned = chain.block_number()

    def drain_after_block_number(number: int) -> None:
        if number == 1:
            # Between the block number and the reads, both balances drop in a newly mined block.
            tx = chain.rpc("eth_sendTransaction", [{"from": wallet, "to": new_wallet(), "value": hex(balance // 2)}])
            chain.wait_for_receipt(tx)
            transact(chain, token, "setBalance", [holder, 0])

    proxy.after = drain_after_block_number
    local = network_by_name("local", services.env)
    results = await funds.check_requirements(
        services,
        [
            funds.FundsRequirement(wallet, local, "NATIVE", balance),
            funds.FundsRequirement(holder, local, "ERC20", 1000, token_address=token),
        ],
    )
    assert chain.block_number() == pinned + 2
    assert chain.get_balance(wallet) < balance
    # Both reads saw block `pinned`, not the later state.
    assert [(result.status, result.block_number) for result in results] == [("PASSED", pinned), ("PASSED", pinned)]


async def test_k_requirements_on_one_network_cost_two_http_requests(
    chain_env: dict[str, str], services: Services, chain: AnvilNode, proxy: CountingProxy, token: str
) -> None:
    rich, poor = new_wallet(), new_wallet()
    chain.set_balance(rich, 10**18)
    transact(chain, token, "setBalance", [rich, 500])
    transact(chain, token, "setBalance", [poor, 499])
    local = network_by_name("local", services.env)
    requirements = [
        funds.FundsRequirement(rich, local, "NATIVE", 10**18),
        funds.FundsRequirement(rich, local, "NATIVE", 10**18 + 1),  # same holding, another threshold
        funds.FundsRequirement(rich, local, "ERC20", 500, token_address=token),
        funds.FundsRequirement(poor, local, "ERC20", 500, token_address=token),
        funds.FundsRequirement(poor, local, "NATIVE", 0),
    ]
    proxy.payloads.clear()
    results = await funds.check_requirements(services, requirements)

    assert [result.status for result in results] == ["PASSED", "FAILED", "PASSED", "FAILED", "PASSED"]
    assert len(proxy.payloads) == 2
    first, batch = proxy.payloads
    # The endpoint is new to this isolate: its chain id is checked in the same request as its head.
    assert [call["method"] for call in first] == ["eth_chainId", "eth_blockNumber"]
    block = results[0].block_number
    assert {result.block_number for result in results} == {block}
    assert [call["method"] for call in batch] == [
        "eth_blockNumber",  # keeps the remembered head fresh for the next check
        "eth_getCode",  # the token, once
        "eth_getBalance",  # rich (both thresholds share it)
        "eth_call",
        "eth_call",
        "eth_getBalance",  # poor
    ]
    assert all(call["params"][-1] == hex(block) for call in batch[1:])
    # The chain id is asked once per endpoint and isolate: the next cold check asks only for the head.
    proxy.payloads.clear()
    await funds.check_requirements(services, requirements)
    assert [payload["method"] for payload in proxy.payloads[:1]] == ["eth_blockNumber"]
    assert len(proxy.payloads) == 2


async def test_k_requirements_cost_one_http_request_once_the_head_is_known(
    chain_env: dict[str, str], services: Services, chain: AnvilNode, proxy: CountingProxy, token: str
) -> None:
    chain_env["FUNDS_BLOCK_MAX_AGE_SECONDS"] = "15"
    rich = new_wallet()
    chain.set_balance(rich, 10**18)
    transact(chain, token, "setBalance", [rich, 500])
    local = network_by_name("local", services.env)
    requirements = [
        funds.FundsRequirement(rich, local, "NATIVE", 10**18),
        funds.FundsRequirement(rich, local, "ERC20", 500, token_address=token),
        funds.FundsRequirement(rich, local, "ERC20", 501, token_address=token),
        funds.FundsRequirement(new_wallet(), local, "NATIVE", 1),
    ]
    await funds.check_requirements(services, requirements)  # cold: learns the head
    head = chain.block_number()
    proxy.payloads.clear()
    results = await funds.check_requirements(services, requirements)
    assert [result.status for result in results] == ["PASSED", "PASSED", "FAILED", "FAILED"]
    assert len(proxy.payloads) == 1, "k requirements on one network: exactly one HTTP request"
    (batch,) = proxy.payloads
    assert {result.block_number for result in results} == {head}
    assert [call["method"] for call in batch[:2]] == ["eth_blockNumber", "eth_getCode"]  # no eth_chainId again
    assert all(call["params"][-1] == hex(head) for call in batch[1:])  # every read pinned to one block
    # An older head is not reused: past the max age the check asks again (2 requests).
    services.clock.advance(16)
    proxy.payloads.clear()
    await funds.check_requirements(services, requirements)
    assert len(proxy.payloads) == 2


async def test_a_remembered_head_the_node_does_not_know_falls_back(
    chain_env: dict[str, str], services: Services, chain: AnvilNode, proxy: CountingProxy
) -> None:
    chain_env["FUNDS_BLOCK_MAX_AGE_SECONDS"] = "15"
    local = network_by_name("local", services.env)
    wallet = new_wallet()
    chain.set_balance(wallet, 5)
    requirement = [funds.FundsRequirement(wallet, local, "NATIVE", 5)]
    now = services.clock.now().timestamp()
    # This endpoint is known to be on the chain, and "said" a head it does not have (a reset dev chain).
    services.block_cache.remember_chain_id(proxy.url, 31337, now)
    services.block_cache.remember(proxy.url, chain.block_number() + 1000, now)
    proxy.payloads.clear()
    (result,) = await funds.check_requirements(services, requirement)
    assert result.status == "PASSED" and result.block_number == chain.block_number()
    # The batch at the unknown block (anvil: BlockOutOfRangeError), the endpoint's own head, the batch again.
    assert [len(payload) if isinstance(payload, list) else payload["method"] for payload in proxy.payloads] == [
        2,
        "eth_blockNumber",
        2,
    ]


async def test_one_http_check_is_two_requests(api: ApiClient, chain: AnvilNode, proxy: CountingProxy) -> None:
    wallet = new_wallet()
    chain.set_balance(wallet, 1)
    proxy.payloads.clear()
    assert (await api.post(CHECK, json=native(wallet, 1))).json()["status"] == "PASSED"
    assert len(proxy.payloads) == 2


async def test_networks_are_checked_concurrently(chain: AnvilNode, services: Services) -> None:
    in_flight = InFlight()
    with (
        AnvilNode(chain_id=84532) as base_sepolia,
        CountingProxy(chain.url, delay=0.2, in_flight=in_flight) as local_proxy,
        CountingProxy(base_sepolia.url, delay=0.2, in_flight=in_flight) as base_proxy,
    ):
        env = Env(
            {
                "RPC_URL_LOCAL": local_proxy.url,
                "RPC_URL_BASE_SEPOLIA": base_proxy.url,
                "RPC_PUBLIC_FALLBACKS": "false",
                "HMAC_SECRET": HMAC_SECRET,  # the key of the balance commitments
            }
        )
        two_chains = Services(env=env, db=services.db, clock=services.clock, logger=services.logger)
        wallet = new_wallet()
        chain.set_balance(wallet, 10)
        base_sepolia.set_balance(wallet, 20)
        local = network_by_name("local", env)
        base = network_by_name("base-sepolia", env)
        results = await funds.check_requirements(
            two_chains,
            [
                funds.FundsRequirement(wallet, local, "NATIVE", 10),
                funds.FundsRequirement(wallet, base, "NATIVE", 21),
                funds.FundsRequirement(wallet, local, "NATIVE", 11),
                funds.FundsRequirement(wallet, base, "NATIVE", 20),
            ],
        )
        await two_chains.http.aclose()
    assert [result.status for result in results] == ["PASSED", "FAILED", "FAILED", "PASSED"]
    assert (len(local_proxy.payloads), len(base_proxy.payloads)) == (2, 2)
    # Each request is held 0.2 s at its proxy: two at once means the networks were read concurrently.
    assert in_flight.peak == 2


# -- privacy and attestations ------------------------------------------------------------------------------


async def test_the_balance_never_leaves_the_server(
    api: ApiClient,
    chain: AnvilNode,
    token: str,
    services: Services,
    log_sink: MemoryLogSink,
    caplog: pytest.LogCaptureFixture,
    db_path: Path,
    make_user: Callable[..., Any],
) -> None:
    caplog.set_level("DEBUG")
    balance = 987_654_321_987_654_321_123
    wallet = new_wallet()
    chain.set_balance(wallet, balance)
    transact(chain, token, "setBalance", [wallet, balance])
    _, api_key = await make_user()
    # Thresholds either side of the balance, so its own digits are never legitimately anywhere.
    responses = [
        await api.post(CHECK, json=native(wallet, balance - 1)),
        await api.post(CHECK, json=native(wallet, balance + 1), token=api_key),
        await api.post(CHECK, json=erc20(wallet, token, balance - 1)),
        await api.post(CHECK, json=erc20(wallet, token, balance + 1)),
        await api.post(CHECK, json=erc20(wallet, new_wallet(), 1)),  # an error response too
    ]
    assert [response.status for response in responses] == [200, 200, 200, 200, 400]
    assert [response.json().get("status") for response in responses[:4]] == ["PASSED", "FAILED", "PASSED", "FAILED"]
    # The owner's re-verification takes the balance in, and gives back only a yes or no.
    verified = await api.post(
        f"/gatekeeper/v2/funds/attestations/{responses[1].json()['attestation_id']}/verify",
        json={"balance": str(balance)},
        token=api_key,
    )
    assert verified.json()["matches"] is True
    responses.append(verified)

    rows = (await services.db.prepare("SELECT * FROM funds_attestations").all()).results
    events = (await services.db.prepare("SELECT * FROM events").all()).results
    assert len(rows) == 4
    texts = [
        *(response.text for response in responses),
        *(json.dumps(response.headers) for response in responses),
        *log_sink.lines,
        caplog.text,
        json.dumps(rows),
        json.dumps(events),
    ]
    # Every byte of the database (file and WAL): not in any table, not in a leftover page.
    stored = b"".join(path.read_bytes() for path in db_path.parent.glob(db_path.name + "*")).decode("latin-1")
    forms = [str(balance), hex(balance), hex(balance)[2:], balance.to_bytes(32, "big").hex()]
    for text in [*texts, stored]:
        for form in forms:
            assert form not in text


async def test_attestation_stores_a_keyed_commitment(
    api: ApiClient, chain: AnvilNode, services: Services, make_user: Callable[..., Any]
) -> None:
    """Issue 12 item 9: sha256(balance ":" salt) with the salt beside it falls to a brute force of a DB copy."""
    user_id, api_key = await make_user()
    wallet = new_wallet()
    balance = 3 * 10**17
    chain.set_balance(wallet, balance)
    first = (await api.post(CHECK, json=native(wallet, "0100"), token=api_key)).json()
    second = (await api.post(CHECK, json=native(wallet, balance + 1))).json()

    row = await attestation(services, first["attestation_id"])
    assert row == {
        "id": first["attestation_id"],
        "challenge_id": None,
        "requirement_id": None,
        "requested_by": user_id,
        "wallet_address": wallet,
        "network": "local",
        "chain_id": 31337,
        "asset_type": "NATIVE",
        "token_address": None,
        "min_balance": "100",
        "status": "PASSED",
        "block_number": first["block_number"],
        "provider_host": first["provider"],
        "balance_commitment": row["balance_commitment"],
        "salt": row["salt"],
        "commitment_scheme": "HMAC-SHA256-V1",
        "checked_at": first["checked_at"],
    }
    assert len(row["salt"]) == 64 and int(row["salt"], 16) >= 0
    # What a copy of the database allows: try balances against the salt beside the commitment. No match.
    assert row["balance_commitment"] != hashlib.sha256(f"{balance}:{row['salt']}".encode()).hexdigest()
    # The keyed form, with the key derived from HMAC_SECRET exactly as docs/security.md states.
    key = hmac.new(HMAC_SECRET.encode(), b"tattlehash/funds-commitment/v1", hashlib.sha256).digest()
    assert row["balance_commitment"] == hmac.new(key, f"{balance}:{row['salt']}".encode(), hashlib.sha256).hexdigest()
    assert funds.verify_commitment(balance, row["salt"], row["balance_commitment"], key)

    other = await attestation(services, second["attestation_id"])
    assert other["status"] == "FAILED"
    # A fresh salt per check: the same balance never gives the same commitment twice.
    assert other["salt"] != row["salt"]
    assert other["balance_commitment"] != row["balance_commitment"]
    assert funds.verify_commitment(balance, other["salt"], other["balance_commitment"], key)


async def test_the_owner_of_a_check_can_have_its_balance_reverified(
    api: ApiClient, chain: AnvilNode, services: Services, make_user: Callable[..., Any], log_sink: MemoryLogSink
) -> None:
    """A party cannot recompute a keyed commitment itself: the server re-verifies a claimed balance for it."""
    _, owner = await make_user()
    _, stranger = await make_user()
    wallet = new_wallet()
    balance = 5 * 10**17 + 12345
    chain.set_balance(wallet, balance)
    checked = (await api.post(CHECK, json=native(wallet, 1), token=owner)).json()
    url = f"/gatekeeper/v2/funds/attestations/{checked['attestation_id']}/verify"

    right = await api.post(url, json={"balance": str(balance)}, token=owner)
    assert right.status == 200, right.text
    assert right.json() == {
        "attestation_id": checked["attestation_id"],
        "network": "local",
        "block_number": checked["block_number"],
        "status": "PASSED",
        "checked_at": checked["checked_at"],
        "matches": True,
    }
    wrong = await api.post(url, json={"balance": str(balance + 1)}, token=owner)
    assert wrong.json()["matches"] is False
    assert (await api.post(url, json={"balance": str(balance)}, token=ADMIN_TOKEN)).json()["matches"] is True
    # Nobody else learns anything, not even that the attestation exists.
    for token in (stranger,):
        refused = await api.post(url, json={"balance": str(balance)}, token=token)
        assert (refused.status, refused.error_code) == (404, "E2008")
    unknown = await api.post(
        "/gatekeeper/v2/funds/attestations/2b1f3c1e-1111-4111-8111-111111111111/verify",
        json={"balance": "1"},
        token=owner,
    )
    assert (unknown.status, unknown.error_code) == (404, "E2008")
    assert (await api.post(url, json={"balance": "1"})).error_code == "E9005"
    # An anonymous check has no owner: only an operator can re-verify it.
    anonymous = (await api.post(CHECK, json=native(wallet, 1))).json()
    other_url = f"/gatekeeper/v2/funds/attestations/{anonymous['attestation_id']}/verify"
    assert (await api.post(other_url, json={"balance": str(balance)}, token=owner)).error_code == "E2008"
    for bad in (balance, "-1", "1e18", "0x10", "", "9" * 79, str(2**256)):
        refused = await api.post(url, json={"balance": bad}, token=owner)
        assert (refused.status, refused.error_code) == (400, "E9004"), bad
    # The claim never reaches a log line.
    assert not any(str(balance) in line for line in log_sink.lines)


async def test_challenge_feature_can_store_attestations_in_its_own_batch(
    chain_env: dict[str, str], services: Services, chain: AnvilNode, token: str, make_user: Callable[..., Any]
) -> None:
    creator, _ = await make_user()
    now = services.now()
    challenge_id = "7d1e5a43-2b8c-4f0e-9a61-3c5d7e9f1b20"
    await (
        services.db.prepare(
            "INSERT INTO challenges (id, mode, status, title, creator_user_id, created_at, updated_at) "
            "VALUES (?, 'GATEKEEPER', 'AWAITING_GATEKEEPER', 'Batch test', ?, ?, ?)"
        )
        .bind(challenge_id, creator, "2026-11-24T12:00:00.000Z", "2026-11-24T12:00:00.000Z")
        .run()
    )
    wallet = new_wallet()
    chain.set_balance(wallet, 50)
    transact(chain, token, "setBalance", [wallet, 49])
    local = network_by_name("local", services.env)
    requirements = []
    for position, (requirement_id, asset, token_address) in enumerate(
        [("req-native", "NATIVE", None), ("req-token", "ERC20", token)]
    ):
        await (
            services.db.prepare(
                "INSERT INTO funds_requirements (id, challenge_id, side, position, wallet_address, network, asset_type, "
                "token_address, min_balance) VALUES (?, ?, 'CREATOR', ?, ?, 'local', ?, ?, '50')"
            )
            .bind(requirement_id, challenge_id, position, wallet, asset, token_address)
            .run()
        )
        requirements.append(
            funds.FundsRequirement(
                wallet,
                local,
                asset,
                50,
                token_address=token_address,
                requirement_id=requirement_id,
                challenge_id=challenge_id,
            )
        )
    results = await funds.check_requirements(services, requirements)
    assert [result.status for result in results] == ["PASSED", "FAILED"]

    guard = "SELECT 1 FROM challenges WHERE id = ? AND status = 'AWAITING_GATEKEEPER'"
    statements = [
        services.db.prepare(
            "UPDATE challenges SET status = 'CANCELLED', updated_at = ? WHERE id = ? AND status = 'AWAITING_GATEKEEPER'"
        ).bind("2026-11-24T12:01:00.000Z", challenge_id),
        *funds.attestation_statements(services.db, results, now, requested_by=creator),
        *(
            services.db.prepare("UPDATE funds_requirements SET status = ?, attestation_id = ? WHERE id = ?").bind(
                result.status, result.attestation_id, result.requirement.requirement_id
            )
            for result in results
        ),
    ]
    await services.db.batch(statements)
    rows = (
        await services.db.prepare(
            "SELECT r.id, r.status, a.status AS attested, a.challenge_id, a.requirement_id, a.token_address "
            "FROM funds_requirements r JOIN funds_attestations a ON a.id = r.attestation_id ORDER BY r.position"
        ).all()
    ).results
    assert rows == [
        {
            "id": "req-native",
            "status": "PASSED",
            "attested": "PASSED",
            "challenge_id": challenge_id,
            "requirement_id": "req-native",
            "token_address": None,
        },
        {
            "id": "req-token",
            "status": "FAILED",
            "attested": "FAILED",
            "challenge_id": challenge_id,
            "requirement_id": "req-token",
            "token_address": token,
        },
    ]

    # With a guard that no longer holds (the challenge moved on), nothing is written.
    again = await funds.check_requirements(services, requirements[:1])
    await services.db.batch(
        funds.attestation_statements(services.db, again, now, guard_sql=guard, guard_params=(challenge_id,))
    )
    count = await services.db.prepare("SELECT COUNT(*) AS n FROM funds_attestations").first("n")
    assert count == 2


async def test_no_requirements_cost_nothing(
    chain_env: dict[str, str], services: Services, proxy: CountingProxy
) -> None:
    assert await funds.check_requirements(services, []) == []
    assert proxy.payloads == []


async def test_commitments_from_before_keying_are_wrapped_by_the_scheduled_job(
    api: ApiClient, chain: AnvilNode, services: Services, make_user: Callable[..., Any]
) -> None:
    """Issue 12 item 9, old rows: a plain sha256(balance ":" salt) beside its salt is brute-forceable from a
    database copy; the scheduled job replaces it by a keyed wrap, and the owner can still have it re-verified."""
    _, owner = await make_user()
    wallet = new_wallet()
    balance = 3 * 10**15 + 77
    chain.set_balance(wallet, balance)
    checked = (await api.post(CHECK, json=native(wallet, 1), token=owner)).json()
    attestation_id = checked["attestation_id"]
    salt = (
        await services.db.prepare("SELECT salt FROM funds_attestations WHERE id = ?").bind(attestation_id).first("salt")
    )
    legacy = hashlib.sha256(f"{balance}:{salt}".encode()).hexdigest()
    # The row as 2.0.0 wrote it.
    await (
        services.db.prepare(
            "UPDATE funds_attestations SET balance_commitment = ?, commitment_scheme = NULL WHERE id = ?"
        )
        .bind(legacy, attestation_id)
        .run()
    )

    report = await run_scheduled(services)

    assert report.results["rekey_legacy_commitments"] == {"rekeyed": 1}
    row = await (
        services.db.prepare("SELECT balance_commitment, commitment_scheme FROM funds_attestations WHERE id = ?")
        .bind(attestation_id)
        .first()
    )
    assert row["commitment_scheme"] == funds.WRAPPED_SCHEME
    assert row["balance_commitment"] != legacy  # the brute-forceable value is gone from the row
    key = hmac.new(HMAC_SECRET.encode(), b"tattlehash/funds-commitment/v1", hashlib.sha256).digest()
    assert row["balance_commitment"] == hmac.new(key, f"sha256:{legacy}".encode(), hashlib.sha256).hexdigest()
    url = f"/gatekeeper/v2/funds/attestations/{attestation_id}/verify"
    assert (await api.post(url, json={"balance": str(balance)}, token=owner)).json()["matches"] is True
    assert (await api.post(url, json={"balance": str(balance - 1)}, token=owner)).json()["matches"] is False
    assert (await run_scheduled(services)).results["rekey_legacy_commitments"] == {"rekeyed": 0}
