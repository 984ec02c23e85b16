"""Shared helpers for the wallet tests: wallet-grade signing, challenge creation, an RPC stand-in.

Every signature is made by eth-account exactly as MetaMask's personal_sign makes it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from eth_account import Account
from eth_account.messages import encode_defunct

from tests.support.client import ApiClient, ApiResponse

CHALLENGE = "/gatekeeper/v2/wallet/challenge"
VERIFY = "/gatekeeper/v2/wallet/verify"
# Loopback only: with public fallbacks off, a stray RPC call can never reach the internet.
RPC_URL = "http://127.0.0.1:9/"  # as BASE_VARS: the live suites share the base Worker

KEY_ALICE = "0x4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318"
KEY_BOB = "0x" + "22" * 32
KEY_CAROL = "0x" + "33" * 32


def address_of(key: str) -> str:
    """The checksummed address of a private key."""
    return Account.from_key(key).address


def sign(message: str, key: str) -> str:
    """personal_sign as a wallet does it; 0x-prefixed hex (hexbytes >= 1.0 drops the prefix)."""
    signature = Account.sign_message(encode_defunct(text=message), private_key=key).signature.hex()
    return signature if signature.startswith("0x") else "0x" + signature


def with_v(signature: str, v: int) -> str:
    """The same signature with another last byte (v)."""
    return signature[:-2] + f"{v:02x}"


def to_compact(signature: str) -> str:
    """The EIP-2098 64-byte form of a real 65-byte signature: y-parity folded into the top bit of s."""
    raw = bytes.fromhex(signature[2:])
    parity = raw[64] - 27 if raw[64] >= 27 else raw[64]
    s = int.from_bytes(raw[32:64], "big") | (parity << 255)
    return "0x" + (raw[:32] + s.to_bytes(32, "big")).hex()


@pytest.fixture(autouse=True)
def wallet_env(env_vars: dict[str, str]) -> dict[str, str]:
    """eth-mainnet served only by a loopback URL: no test can reach a public RPC provider."""
    env_vars["RPC_PUBLIC_FALLBACKS"] = "false"
    env_vars["RPC_URL_ETH_MAINNET"] = RPC_URL
    return env_vars


async def create(
    client: ApiClient, key: str = KEY_ALICE, chain_id: str = "eip155:1", token: str | None = None, **extra: Any
) -> dict[str, Any]:
    """Create a challenge for the key's address and return the 201 body."""
    response = await client.post(
        CHALLENGE, json={"wallet_address": address_of(key), "chain_id": chain_id, **extra}, token=token
    )
    assert response.status == 201, response.text
    return response.json()


async def verify(client: ApiClient, challenge_id: str, signature: str, token: str | None = None) -> ApiResponse:
    return await client.post(VERIFY, json={"challenge_id": challenge_id, "signature": signature}, token=token)


def rpc_node(code: str = "0x", call_result: str | None = None) -> Callable[[httpx.Request], httpx.Response]:
    """A JSON-RPC node stand-in for pytest-httpx: eth_getCode answers `code`, eth_call `call_result`."""

    def answer(request: httpx.Request) -> httpx.Response:
        call = json.loads(request.content)
        if call["method"] == "eth_getCode":
            result: Any = code
        elif call["method"] == "eth_call" and call_result is not None:
            result = call_result
        else:
            return httpx.Response(
                200, json={"jsonrpc": "2.0", "id": call["id"], "error": {"code": -32601, "message": "no"}}
            )
        return httpx.Response(200, json={"jsonrpc": "2.0", "id": call["id"], "result": result})

    return answer


def rpc_methods(httpx_mock: Any) -> list[str]:
    return [json.loads(request.content)["method"] for request in httpx_mock.get_requests()]
