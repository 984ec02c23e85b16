"""No secret, token, RPC key or balance in any log line, through the whole GATEKEEPER flow, in-process and live."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from eth_account import Account
from eth_account.messages import encode_defunct

from core.logging import MemoryLogSink
from local.anvil import AnvilNode
from tests.conftest import ADMIN_TOKEN, HMAC_SECRET, use_local_chain_only
from tests.support.client import ApiClient
from tests.support.contracts import deploy, transact
from tests.support.server import LiveServer

RPC_KEY = "rpcKEY-5ecret-9f8e7d6c5b4a"
# Odd amounts, so their decimal and hex forms can only come from a balance, never from a threshold or an id.
NATIVE_BALANCE = 2 * 10**18 + 123_456_789
TOKEN_BALANCE = 100 * 10**18 + 987_654_321
NATIVE_MIN, TOKEN_MIN = 10**18, 100 * 10**18


class KeyedRpcProxy:
    """A provider-style endpoint, http://127.0.0.1:<port>/v3/<key>, in front of anvil (which serves only `/`).

    Requests to any other path are refused, so the client provably used the full keyed URL. `mode` "mangle"
    forwards balance reads but answers with shifted JSON-RPC ids: a malformed answer that still holds the balances.
    """

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.mode = "ok"
        self.served = 0
        self.mangled = 0
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                if self.path != f"/v3/{RPC_KEY}":
                    self.send_response(404)
                    self.end_headers()
                    return
                answer = httpx.post(
                    proxy.upstream, content=body, headers={"content-type": "application/json"}, timeout=10
                ).content
                if proxy.mode == "mangle" and (b"eth_call" in body or b"eth_getBalance" in body):
                    answer = _shift_ids(answer)
                    proxy.mangled += 1
                proxy.served += 1
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v3/{RPC_KEY}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> KeyedRpcProxy:
        self.thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def _shift_ids(answer: bytes) -> bytes:
    data = json.loads(answer)
    for item in data if isinstance(data, list) else [data]:
        item["id"] = (item.get("id") or 0) + 1000
    return json.dumps(data).encode()


@pytest.fixture
def rpc_proxy(chain: AnvilNode) -> Iterator[KeyedRpcProxy]:
    with KeyedRpcProxy(chain.url) as proxy:
        yield proxy


@pytest.fixture
def env_vars(env_vars: dict[str, str], rpc_proxy: KeyedRpcProxy) -> dict[str, str]:
    # The first webhook delivery attempt right after the response: its signing and errors get logged too.
    return use_local_chain_only(env_vars, rpc_proxy.url)


def sign(message: str, key: bytes) -> str:
    signature = Account.sign_message(encode_defunct(text=message), private_key=key).signature.hex()
    return signature if signature.startswith("0x") else "0x" + signature


@dataclass
class Secrets:
    """Everything the flow handled that must never be logged."""

    values: dict[str, str] = field(default_factory=dict)

    def add(self, name: str, value: str) -> None:
        assert value, name
        self.values[name] = value

    def add_balance(self, name: str, amount: int) -> None:
        self.add(f"{name} (decimal)", str(amount))
        # Without 0x: also matches the 32-byte zero-padded word an eth_call returns.
        self.add(f"{name} (hex)", format(amount, "x"))

    def found_in(self, text: str) -> list[str]:
        lowered = text.lower()
        return [name for name, value in self.values.items() if value.lower() in lowered]


class LiveClient:
    """ApiClient's interface over real HTTP, so one flow runs against both the ASGI app and the live server."""

    def __init__(self, http: httpx.AsyncClient) -> None:
        self.http = http

    async def request(self, method: str, path: str, *, json: Any = None, token: str | None = None) -> Any:
        headers = {"authorization": f"Bearer {token}"} if token is not None else {}
        response = await self.http.request(method, path, json=json, headers=headers)
        return _Answer(response.status_code, response.text)

    async def get(self, path: str, token: str | None = None, **_: Any) -> Any:
        return await self.request("GET", path, token=token)

    async def post(self, path: str, json: Any = None, token: str | None = None, **_: Any) -> Any:
        return await self.request("POST", path, json=json if json is not None else {}, token=token)


@dataclass
class _Answer:
    status: int
    text: str

    def json(self) -> Any:
        return json.loads(self.text)


async def gatekeeper_flow(client: Any, chain: AnvilNode, proxy: KeyedRpcProxy) -> Secrets:
    """The whole GATEKEEPER flow plus the failure paths most likely to log what they hold."""
    secrets = Secrets()
    secrets.add("HMAC_SECRET", HMAC_SECRET)
    secrets.add("ADMIN_TOKEN", ADMIN_TOKEN)
    secrets.add("RPC key", RPC_KEY)
    keys = []
    for email in ("creator@example.com", "counter@example.com"):
        issued = await client.post("/admin/api-keys", json={"email": email}, token=ADMIN_TOKEN)
        assert issued.status == 201, issued.text
        keys.append(issued.json())
        secrets.add(f"API key of {email}", issued.json()["api_key"])
    creator_key, counter_key = keys[0]["api_key"], keys[1]["api_key"]
    creator, counterparty = Account.create(), Account.create()
    token = deploy(chain, "TestToken").lower()
    chain.set_balance(creator.address, NATIVE_BALANCE)
    transact(chain, token, "setBalance", [counterparty.address, TOKEN_BALANCE])
    secrets.add_balance("creator's native balance", NATIVE_BALANCE)
    secrets.add_balance("counterparty's token balance", TOKEN_BALANCE)

    sessions = []
    for account, key in ((creator, creator_key), (counterparty, counter_key)):
        created = await client.post(
            "/gatekeeper/v2/wallet/challenge",
            json={"wallet_address": account.address, "chain_id": "eip155:31337"},
            token=key,
        )
        assert created.status == 201, created.text
        body = created.json()
        wrong = await client.post(
            "/gatekeeper/v2/wallet/verify",
            json={"challenge_id": body["challenge_id"], "signature": sign(body["message"], Account.create().key)},
            token=key,
        )
        assert wrong.status == 400, wrong.text
        verified = await client.post(
            "/gatekeeper/v2/wallet/verify",
            json={"challenge_id": body["challenge_id"], "signature": sign(body["message"], account.key)},
            token=key,
        )
        assert verified.status == 200, verified.text
        session = verified.json()["session_token"]
        secrets.add(f"session of {account.address}", session)
        secrets.add(f"session MAC of {account.address}", session.rsplit(".", 1)[1])
        sessions.append(session)
    # Sessions in use, and forged credentials (an attacker's guesses are not for the logs either).
    assert (await client.get("/me", token=sessions[0])).status == 200
    forged_key, forged_session = "thk_" + "G" * 43, sessions[1][:-6] + "AAAAAA"
    secrets.add("forged API key", forged_key)
    secrets.add("forged session", forged_session)
    for forged in (forged_key, forged_session):
        assert (await client.get("/me", token=forged)).status == 401

    hook = await client.post("/webhooks", json={"url": "http://localhost:9/hook"}, token=creator_key)
    assert hook.status == 201, hook.text
    secrets.add("webhook secret", hook.json()["secret"])

    side = {"network": "local"}
    body = {
        "mode": "GATEKEEPER",
        "title": "OTC swap",
        "counterparty_user_id": keys[1]["user_id"],
        "gatekeeper_requirements": {
            "creator": {**side, "wallet_address": creator.address,
                        "funds_checks": [{"asset_type": "NATIVE", "min_balance": str(NATIVE_MIN)}]},
            "counterparty": {**side, "wallet_address": counterparty.address,
                             "funds_checks": [{"asset_type": "ERC20", "token_address": token,
                                               "min_balance": str(TOKEN_MIN)}]},
        },
    }  # fmt: skip
    created = await client.post("/challenges", json=body, token=sessions[0])
    assert created.status == 201, created.text
    challenge_id = created.json()["id"]
    assert (await client.post(f"/challenges/{challenge_id}/send", token=creator_key)).status == 200
    accepted = await client.post(f"/challenges/{challenge_id}/accept", token=sessions[1])
    assert accepted.json()["status"] == "INTENT_LOCKED", accepted.text
    for key in (creator_key, counter_key):
        completed = await client.post(f"/challenges/{challenge_id}/complete", token=key)
        assert completed.status == 200, completed.text
    assert completed.json()["status"] == "COMPLETED"
    assert (await client.get(f"/proof/{challenge_id}")).status == 200

    # Direct funds checks: one passing, one failing, one on an RPC answer that must be refused as malformed.
    check = {"wallet_address": counterparty.address, "network": "local", "asset_type": "ERC20", "token_address": token}
    for minimum, status in ((TOKEN_MIN, "PASSED"), (TOKEN_BALANCE + 1, "FAILED")):
        result = await client.post("/gatekeeper/v2/funds/check", json={**check, "min_balance": str(minimum)})
        assert result.json()["status"] == status, result.text
    proxy.mode = "mangle"
    try:
        mangled = proxy.mangled
        broken = await client.post("/gatekeeper/v2/funds/check", json={**check, "min_balance": "1"})
        assert broken.status == 502, broken.text
        assert proxy.mangled > mangled  # the refused answer really carried the balance
    finally:
        proxy.mode = "ok"
    return secrets


def scan(secrets: Secrets, lines: list[str]) -> list[str]:
    return [f"{names}: {line[:300]}" for line in lines if (names := secrets.found_in(line))]


async def test_no_secrets_in_app_or_python_logs(
    client: ApiClient,
    chain: AnvilNode,
    rpc_proxy: KeyedRpcProxy,
    log_sink: MemoryLogSink,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    for name in ("httpx", "httpcore", "chain", "asyncio"):
        caplog.set_level(logging.DEBUG, logger=name)
    secrets = await gatekeeper_flow(client, chain, rpc_proxy)
    await client.adapter.drain()  # the webhook deliveries' background work logs too
    assert rpc_proxy.served > 0
    records = caplog.records
    python_lines = [caplog.text, *(record.getMessage() for record in records), *(repr(vars(r)) for r in records)]
    # The scan must see what it is meant to see: app lines, and httpx's own request lines at DEBUG/INFO.
    assert any('"event":"request"' in line for line in log_sink.lines)
    assert any(record.name.startswith("httpx") for record in records)
    assert any("funds_checked" in line for line in log_sink.lines)
    assert any('"event":"webhook_attempt"' in line for line in log_sink.lines)
    assert any('"event":"funds_rpc_unavailable"' in line for line in log_sink.lines)
    leaks = scan(secrets, log_sink.lines) + scan(secrets, python_lines)
    assert not leaks, "\n".join(leaks)


@pytest.mark.slow
async def test_no_secrets_in_live_server_output(
    chain: AnvilNode, rpc_proxy: KeyedRpcProxy, live_server: LiveServer
) -> None:
    async with httpx.AsyncClient(base_url=live_server.url, timeout=30, trust_env=False) as http:
        secrets = await gatekeeper_flow(LiveClient(http), chain, rpc_proxy)
    output = live_server.logs()
    assert '"event":"request"' in output and "funds_checked" in output
    leaks = scan(secrets, output.splitlines())
    assert not leaks, "\n".join(leaks)
