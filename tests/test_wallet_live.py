"""Against the real local server over HTTP: single use under 50 concurrent verifies, and no bad input is a 500."""

from __future__ import annotations

import asyncio
import hashlib
import json
import sqlite3
from collections import Counter

import httpx
import pytest

from tests.support.workerd import WorkerdServer
from tests.test_wallet_support import (
    CHALLENGE,
    KEY_ALICE,
    KEY_BOB,
    VERIFY,
    address_of,
    sign,
    wallet_env,  # noqa: F401 (autouse fixture)
)

pytestmark = pytest.mark.slow


# A wallet no other test uses: in workerd this suite shares its Worker (and D1) with other suites.
KEY_FIFTY = hashlib.sha256(b"tattlehash test: fifty simultaneous verifies").digest()


async def test_fifty_simultaneous_verifies_have_exactly_one_winner(live_server):
    address = address_of(KEY_FIFTY)
    with sqlite3.connect(live_server.database_path) as database:
        users_before = database.execute("SELECT COUNT(*) FROM users").fetchone()[0]
    async with httpx.AsyncClient(base_url=live_server.url, timeout=30, limits=httpx.Limits(max_connections=60)) as http:
        created = await http.post(CHALLENGE, json={"wallet_address": address, "chain_id": "eip155:1"})
        assert created.status_code == 201
        challenge = created.json()
        payload = {"challenge_id": challenge["challenge_id"], "signature": sign(challenge["message"], KEY_FIFTY)}

        responses = await asyncio.gather(*(http.post(VERIFY, json=payload) for _ in range(50)))

    statuses = Counter(response.status_code for response in responses)
    assert statuses == {200: 1, 409: 49}, statuses
    assert {response.json()["error"]["code"] for response in responses if response.status_code == 409} == {"E1007"}
    with sqlite3.connect(live_server.database_path) as database:
        owners = database.execute("SELECT user_id FROM wallets WHERE address = ?", (address.lower(),)).fetchall()
        assert len(owners) == 1
        assert database.execute("SELECT COUNT(*) FROM users").fetchone()[0] == users_before + 1
        verified = "SELECT COUNT(*) FROM events WHERE type = 'wallet.verified' AND user_id = ?"
        assert database.execute(verified, owners[0]).fetchone() == (1,)
        status = "SELECT status, verified_user_id FROM wallet_challenges WHERE id = ?"
        assert database.execute(status, (challenge["challenge_id"],)).fetchall() == [("VERIFIED", owners[0][0])]


# The fastest recovery each runtime has: libsecp256k1 on CPython, the bundled @noble/curves over the FFI in workerd.
EXPECTED_BACKEND = {"uvicorn": "coincurve", "workerd": "js"}
KEY_BACKEND = hashlib.sha256(b"tattlehash test: the recovery backend in each runtime").digest()


def logged_events(logs: str, event: str) -> list[dict]:
    """The JSON log records of one event (workerd prefixes nothing, but a line may carry wrangler's own text)."""
    found = []
    for line in logs.splitlines():
        if f'"event":"{event}"' in line:
            found.append(json.loads(line[line.index("{") :]))
    return found


async def test_each_runtime_recovers_signers_with_its_fastest_backend(live_server):
    """In workerd the bundle (uploaded under wrangler.toml's ESModule rule) answers, not a pure-Python fallback."""
    runtime = "workerd" if isinstance(live_server, WorkerdServer) else "uvicorn"
    address = address_of(KEY_BACKEND)
    async with httpx.AsyncClient(base_url=live_server.url, timeout=30) as http:
        challenge = (await http.post(CHALLENGE, json={"wallet_address": address, "chain_id": "eip155:1"})).json()
        payload = {"challenge_id": challenge["challenge_id"], "signature": sign(challenge["message"], KEY_BACKEND)}
        verified = await http.post(VERIFY, json=payload)
    assert verified.status_code == 200, verified.text
    [record] = [
        record
        for record in logged_events(live_server.logs(), "wallet_verified")
        if record["challenge_id"] == challenge["challenge_id"]
    ]
    assert record["recovery_backend"] == EXPECTED_BACKEND[runtime]
    assert record["wallet_address"] == address.lower()


async def test_bad_input_is_always_a_documented_4xx(live_server):
    """Each hostile or malformed request gets its own documented code; nothing reaches a 500."""
    alice = address_of(KEY_ALICE)
    async with httpx.AsyncClient(base_url=live_server.url, timeout=30) as http:
        challenge = (await http.post(CHALLENGE, json={"wallet_address": alice, "chain_id": "eip155:1"})).json()
        good = sign(challenge["message"], KEY_ALICE)
        cid = challenge["challenge_id"]
        cases = [
            (CHALLENGE, {"wallet_address": alice[:2] + alice[2:].swapcase(), "chain_id": "eip155:1"}, 400, "E1001"),
            (CHALLENGE, {"wallet_address": "0x" + "0" * 40, "chain_id": "eip155:1"}, 400, "E1001"),
            (CHALLENGE, {"wallet_address": alice, "chain_id": "eip155:999999"}, 400, "E1002"),
            (CHALLENGE, {"wallet_address": alice, "chain_id": "cosmos:cosmoshub-4"}, 400, "E1002"),
            (CHALLENGE, {"wallet_address": True, "chain_id": "eip155:1"}, 400, "E9004"),
            (CHALLENGE, {"wallet_address": alice, "chain_id": "eip155:1", "format": "siwe"}, 400, "E9004"),
            (
                CHALLENGE,
                {"wallet_address": alice, "chain_id": "eip155:1", "format": "siwe", "domain": "evil.test"},
                400,
                "E9004",
            ),
            (VERIFY, {"challenge_id": cid, "signature": "0xnothex"}, 400, "E1008"),
            (VERIFY, {"challenge_id": cid, "signature": good[:-1]}, 400, "E1008"),
            # Decided without the chain: not hex, or beyond the documented maximum (a 66-byte or v=29 signature
            # could be a contract wallet's, so those ask the chain: tests/test_wallet_contract_signatures.py).
            (VERIFY, {"challenge_id": cid, "signature": "0x" + "00" * 16_385}, 400, "E1008"),
            (VERIFY, {"challenge_id": cid, "signature": ""}, 400, "E1008"),
            (VERIFY, {"challenge_id": "not-a-uuid", "signature": good}, 404, "E1003"),
            (VERIFY, {"challenge_id": cid, "signature": None}, 400, "E9004"),
            (VERIFY, {"challenge_id": [cid], "signature": good}, 400, "E9004"),
            (VERIFY, {"challenge_id": cid, "signature": sign(challenge["message"], KEY_BOB), "x": 1}, 400, "E9004"),
        ]
        for path, body, status, code in cases:
            response = await http.post(path, json=body)
            assert (response.status_code, response.json()["error"]["code"]) == (status, code), (path, body)
        raw = await http.post(
            VERIFY,
            content=b'{"challenge_id": "\\ud800", "signature": "\\udfff"}',
            headers={"content-type": "application/json"},
        )
        assert raw.status_code == 400
        # After all that, the challenge is still usable with the right signature.
        assert (await http.post(VERIFY, json={"challenge_id": cid, "signature": good})).status_code == 200
    assert '"status":500' not in live_server.logs()
