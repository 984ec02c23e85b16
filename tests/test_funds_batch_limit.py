"""Issue 15 item 5 through the HTTP API on a real anvil chain: a provider limiting batch size never costs a check.

The only provider is anvil behind the fault proxy, which refuses every batch of more calls than its limit (one
error object, or geth's error on the first call). Funds checks with many requirements must come back right
(PASSED / FAILED per threshold), read at one block from that provider, and never 502.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from eth_account import Account
from eth_account.messages import encode_defunct

from local.anvil import AnvilNode
from tests.conftest import use_local_chain_only
from tests.support.client import ApiClient
from tests.support.contracts import deploy, transact
from tests.support.faultproxy import FaultProxy

CHECK = "/gatekeeper/v2/funds/check"
LIMIT = 4
TOKENS = 4


def sign(message: str, key: str) -> str:
    signature = Account.sign_message(encode_defunct(text=message), private_key=key).signature.hex()
    return signature if signature.startswith("0x") else "0x" + signature


@pytest.fixture
def limited(request: pytest.FixtureRequest, chain: AnvilNode) -> Iterator[FaultProxy]:
    refusal = getattr(request, "param", "lone")
    with FaultProxy(chain.url, batch_limit=LIMIT, batch_refusal=refusal) as proxy:
        yield proxy


@pytest.fixture
def limited_env(env_vars: dict[str, str], limited: FaultProxy) -> dict[str, str]:
    # The limiting proxy is the network's only provider: without a split there is nowhere to fail over to.
    env_vars["RPC_URL_LOCAL"] = limited.url
    env_vars["RPC_TIMEOUT_SECONDS"] = "5"
    return env_vars


@pytest.fixture
def api(limited_env: dict[str, str], client: ApiClient) -> ApiClient:
    # `limited_env` first, so the services are built with it.
    return client


@pytest.fixture
def tokens(chain: AnvilNode) -> list[str]:
    return [deploy(chain, "TestToken").lower() for _ in range(TOKENS)]


class Party:
    def __init__(self, user_id: str, api_key: str) -> None:
        self.user_id, self.api_key = user_id, api_key
        self.account = Account.create()
        self.native = secrets.randbelow(10**18) + 10**15
        self.holdings = [secrets.randbelow(10**20) + 1 for _ in range(TOKENS)]

    @property
    def wallet(self) -> str:
        return self.account.address

    def fund(self, chain: AnvilNode, tokens: list[str]) -> None:
        chain.set_balance(self.wallet, self.native)
        for token, amount in zip(tokens, self.holdings, strict=True):
            transact(chain, token, "setBalance", [self.wallet, amount])

    def checks(self, tokens: list[str], *, failing: set[int]) -> tuple[list[dict[str, Any]], list[str]]:
        """Ten funds checks (the most a party may have): each holding at its balance, or one above it when failing."""
        specs: list[dict[str, Any]] = []
        for token, balance in [(None, self.native), *zip(tokens, self.holdings, strict=True)]:
            for offset in (0, 1):
                threshold = balance + 1 if len(specs) in failing else balance - offset
                spec = {"asset_type": "NATIVE" if token is None else "ERC20", "min_balance": str(threshold)}
                if token is not None:
                    spec["token_address"] = token
                specs.append(spec)
        return specs, ["FAILED" if index in failing else "PASSED" for index in range(len(specs))]


async def verify_wallet(client: ApiClient, party: Party) -> None:
    created = await client.post(
        "/gatekeeper/v2/wallet/challenge",
        json={"wallet_address": party.wallet, "chain_id": "eip155:31337"},
        token=party.api_key,
    )
    assert created.status == 201, created.text
    body = created.json()
    signature = sign(body["message"], party.account.key.hex())
    verified = await client.post(
        "/gatekeeper/v2/wallet/verify",
        token=party.api_key,
        json={"challenge_id": body["challenge_id"], "signature": signature},
    )
    assert verified.status == 200, verified.text


async def gatekeeper_challenge(
    api: ApiClient, creator: Party, counterparty: Party, creator_checks: list[Any], counter_checks: list[Any]
) -> dict[str, Any]:
    body = {
        "mode": "GATEKEEPER",
        "title": "OTC swap",
        "counterparty_user_id": counterparty.user_id,
        "gatekeeper_requirements": {
            "creator": {"wallet_address": creator.wallet, "network": "local", "funds_checks": creator_checks},
            "counterparty": {"wallet_address": counterparty.wallet, "network": "local", "funds_checks": counter_checks},
        },
    }
    created = await api.post("/challenges", json=body, token=creator.api_key)
    assert created.status == 201, created.text
    challenge_id = created.json()["id"]
    sent = await api.post(f"/challenges/{challenge_id}/send", token=creator.api_key)
    assert sent.status == 200, sent.text
    # Both wallets are verified already: accepting runs all twenty funds checks, on one network, at once.
    accepted = await api.post(f"/challenges/{challenge_id}/accept", token=counterparty.api_key)
    assert accepted.status == 200, accepted.text  # never a 502
    return accepted.json()


@pytest.mark.parametrize(
    ("limited", "failing", "status"),
    [
        ("lone", {1, 6, 9}, "CANCELLED"),
        ("geth", set(), "INTENT_LOCKED"),
    ],
    indirect=["limited"],
)
async def test_twenty_funds_checks_behind_a_batch_limit_are_all_right(
    api: ApiClient,
    chain: AnvilNode,
    tokens: list[str],
    make_user: Any,
    limited: FaultProxy,
    failing: set[int],
    status: str,
) -> None:
    creator = Party(*await make_user(email="creator@example.com"))
    counterparty = Party(*await make_user(email="counter@example.com"))
    for party in (creator, counterparty):
        party.fund(chain, tokens)
        await verify_wallet(api, party)
    creator_checks, creator_expected = creator.checks(tokens, failing=failing)
    counter_checks, counter_expected = counterparty.checks(tokens, failing={9 - index for index in failing})
    limited.reset_counts()

    body = await gatekeeper_challenge(api, creator, counterparty, creator_checks, counter_checks)

    assert body["status"] == status
    assert [check["status"] for check in body["requirements"]["creator"]["funds_checks"]] == creator_expected
    assert [check["status"] for check in body["requirements"]["counterparty"]["funds_checks"]] == counter_expected
    # One batch of 15 calls (the head, 4 tokens' code, 10 holdings) was refused, split on this same provider,
    # and no batch over the limit was answered.
    assert limited.counts["batch_too_large"] >= 1
    assert max(limited.batch_sizes) == 1 + TOKENS + 2 * (1 + TOKENS)
    answered = [size for size in limited.batch_sizes if size <= LIMIT]
    assert sum(answered) >= 1 + TOKENS + 2 * (1 + TOKENS)
    # The limit is remembered for the isolate: the next check's batch is split before it is sent.
    limited.reset_counts()
    single = {"wallet_address": creator.wallet, "network": "local", "asset_type": "ERC20"}
    for token, balance in zip(tokens, creator.holdings, strict=True):
        for threshold, expected in ((balance, "PASSED"), (balance + 1, "FAILED")):
            response = await api.post(CHECK, json={**single, "token_address": token, "min_balance": str(threshold)})
            assert response.status == 200, response.text
            assert response.json()["status"] == expected
    assert limited.counts["batch_too_large"] == 0


async def test_a_limit_of_one_reads_every_call_as_a_plain_request_at_one_block(
    api: ApiClient, chain: AnvilNode, limited: FaultProxy, tokens: list[str]
) -> None:
    limited.batch_limit = 1
    holder = "0x" + secrets.token_hex(20)
    transact(chain, tokens[0], "setBalance", [holder, 700])
    chain.mine()
    start = chain.block_number()
    body = {"wallet_address": holder, "network": "local", "asset_type": "ERC20", "token_address": tokens[0]}
    for threshold, expected in (("700", "PASSED"), ("701", "FAILED"), ("1", "PASSED")):
        response = await api.post(CHECK, json={**body, "min_balance": threshold})
        assert response.status == 200, response.text
        assert response.json()["status"] == expected
        assert start <= response.json()["block_number"] <= chain.block_number()
    # One batch refused, once per isolate: the chain id with the head. Every call since went as a plain
    # request: chain id and head, then head, code and balanceOf (cold); then head, code, balanceOf twice (warm).
    assert limited.batch_sizes == [2]
    assert limited.counts == {"batch_too_large": 1, "forward": 5 + 3 + 3}


@pytest.fixture
def live_env(env_vars: dict[str, str], anvil: AnvilNode) -> Iterator[dict[str, str]]:
    with FaultProxy(anvil.url, batch_limit=2, batch_refusal="geth") as proxy:
        # Listed before `live_server`, so the server (or Worker) is built with it.
        use_local_chain_only(env_vars, proxy.url)
        yield env_vars


@pytest.mark.slow
def test_a_batch_limit_in_both_runtimes(live_env: dict[str, str], live_server: Any, anvil: AnvilNode) -> None:
    """The split under Pyodide's asyncio and fetch (workerd) as well as CPython: ERC-20 checks of three calls."""
    token = deploy(anvil, "TestToken").lower()
    holder = "0x" + secrets.token_hex(20)
    transact(anvil, token, "setBalance", [holder, 10**18])
    body = {"wallet_address": holder, "network": "local", "asset_type": "ERC20", "token_address": token}
    with httpx.Client(base_url=live_server.url, timeout=60) as http:
        for threshold in ("1000000000000000000", "1000000000000000001") * 3:
            response = http.post(CHECK, json={**body, "min_balance": threshold})
            assert response.status_code == 200, response.text
            assert response.json()["status"] == ("PASSED" if threshold.endswith("0") else "FAILED")
