"""Racing actions: of two requests moving the same challenge, exactly one wins; state and history agree."""

from __future__ import annotations

import asyncio
import http.client
import json
import socket
import sqlite3

import httpx
import pytest

from tests.conftest import ADMIN_TOKEN
from tests.support.server import LiveServer

CREATOR_WALLET = "0x" + "1" * 40
COUNTER_WALLET = "0x" + "2" * 40


def gatekeeper_body(counterparty_id: str) -> dict:
    side = {"network": "eth-mainnet", "funds_checks": [{"asset_type": "NATIVE", "min_balance": "1"}]}
    return {
        "mode": "GATEKEEPER", "title": "Trade", "counterparty_user_id": counterparty_id,
        "gatekeeper_requirements": {"creator": {**side, "wallet_address": CREATOR_WALLET},
                                    "counterparty": {**side, "wallet_address": COUNTER_WALLET}},
    }  # fmt: skip


def history_and_status(db_path, challenge_id):
    with sqlite3.connect(db_path) as connection:
        status = connection.execute("SELECT status FROM challenges WHERE id = ?", (challenge_id,)).fetchone()[0]
        moves = connection.execute(
            "SELECT from_status, to_status FROM challenge_status_history WHERE challenge_id = ? ORDER BY id",
            (challenge_id,),
        ).fetchall()
    return status, moves


async def test_accept_and_cancel_in_the_same_instant(client, make_user, db_path):
    _, creator = await make_user()
    counterparty_id, counterparty = await make_user()
    challenge = (await client.post("/challenges", json=gatekeeper_body(counterparty_id), token=creator)).json()
    await client.post(f"/challenges/{challenge['id']}/send", token=creator)
    accept, cancel = await asyncio.gather(
        client.post(f"/challenges/{challenge['id']}/accept", token=counterparty),
        client.post(f"/challenges/{challenge['id']}/cancel", token=creator),
    )
    outcomes = sorted([(accept.status, accept.error_code), (cancel.status, cancel.error_code)])
    assert outcomes == [(200, None), (409, "E3014")]
    winner = accept if accept.status == 200 else cancel
    status, moves = history_and_status(db_path, challenge["id"])
    assert status == winner.json()["status"]
    assert moves[-1][1] == status and len(moves) == 3  # created, sent, and the single winning move


def _raw_request(url: str, path: str, token: str) -> bytes:
    host = url.removeprefix("http://")
    return (
        f"POST {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\n"
        "Content-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}"
    ).encode()


def _fire_together(url: str, requests: list[bytes]) -> list[tuple[int, dict]]:
    """Send all but the last byte of each request, then the last bytes back to back: the server sees them at once."""
    host, port = url.removeprefix("http://").split(":")
    sockets = [socket.create_connection((host, int(port)), timeout=10) for _ in requests]
    for sock, raw in zip(sockets, requests, strict=True):
        sock.sendall(raw[:-1])
    for sock, raw in zip(sockets, requests, strict=True):
        sock.sendall(raw[-1:])
    answers = []
    for sock in sockets:
        # Read by Content-Length or chunks, not until close: wrangler's proxy may keep the socket open.
        response = http.client.HTTPResponse(sock)
        response.begin()
        answers.append((response.status, json.loads(response.read())))
        sock.close()
    return answers


@pytest.fixture
def slow_d1(env_vars):
    """A few ms per query, like D1's network round trip: long enough for two requests to overlap."""
    env_vars["LOCAL_D1_LATENCY_MS"] = "3"


@pytest.mark.slow
def test_accept_and_cancel_race_against_the_real_server(slow_d1, live_server):
    with httpx.Client(base_url=live_server.url, timeout=10) as http:
        admin = {"authorization": f"Bearer {ADMIN_TOKEN}"}
        creator = http.post("/admin/api-keys", json={}, headers=admin).json()
        counterparty = http.post("/admin/api-keys", json={}, headers=admin).json()
        results: list[str] = []
        results_statuses: list[str] = []
        for _ in range(10):
            body = gatekeeper_body(counterparty["user_id"])
            created = http.post("/challenges", json=body, headers={"authorization": f"Bearer {creator['api_key']}"})
            challenge_id = created.json()["id"]
            http.post(f"/challenges/{challenge_id}/send", headers={"authorization": f"Bearer {creator['api_key']}"})
            answers = _fire_together(live_server.url, [
                _raw_request(live_server.url, f"/challenges/{challenge_id}/accept", counterparty["api_key"]),
                _raw_request(live_server.url, f"/challenges/{challenge_id}/cancel", creator["api_key"]),
            ])  # fmt: skip
            winners = [body for status, body in answers if status == 200]
            losers = [body["error"]["code"] for status, body in answers if status != 200]
            final = http.get(f"/challenges/{challenge_id}", headers={"authorization": f"Bearer {creator['api_key']}"})
            events = http.get(f"/challenges/{challenge_id}/events",
                              headers={"authorization": f"Bearer {creator['api_key']}"}).json()  # fmt: skip
            moves = [(move["from_status"], move["to_status"]) for move in events["history"]]
            # Every successful answer is one move in the history, and no move is lost or doubled.
            assert len(moves) == 2 + len(winners), (answers, moves)
            assert final.json()["status"] == moves[-1][1]
            if len(winners) == 1 and losers == ["E3011"]:
                # Cancel finished before accept read: accept is refused from the final state it saw.
                assert final.json()["status"] == winners[0]["status"] == "CANCELLED", answers
                results.append("serial")
            elif len(winners) == 1:
                # Both read the same state: one wins, the other is told the challenge moved.
                assert losers == ["E3014"], answers
                assert final.json()["status"] == winners[0]["status"]
                results.append("race")
            else:
                # The runtime ran them one after the other (workerd: local D1 answers before the next request
                # reads): accept then cancel, each from the state the other left, in the history in that order.
                assert moves[-2][1] == "AWAITING_GATEKEEPER" and moves[-1] == ("AWAITING_GATEKEEPER", "CANCELLED"), (
                    moves
                )
                results.append("serial")
            results_statuses.append(final.json()["status"])
        assert set(results_statuses) <= {"AWAITING_GATEKEEPER", "CANCELLED"}
        if isinstance(live_server, LiveServer):
            # With D1-like latency the requests overlap (a busy machine may still run a pair one after the other).
            assert results.count("race") >= 5, results
