"""The first webhook attempt goes out right after the response that recorded the event (no cron needed)."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest


@pytest.fixture
def receiver():
    received: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            received.append(json.loads(self.rfile.read(int(self.headers["content-length"]))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook", received
    server.shutdown()
    server.server_close()


async def test_event_is_delivered_after_the_response_without_cron(client, make_user, env_vars, receiver):
    env_vars["ALLOW_INSECURE_WEBHOOKS"] = "true"
    env_vars["RELAY_DISPATCH_AFTER_RESPONSE"] = "true"
    url, received = receiver
    _, token = await make_user()
    assert (await client.post("/webhooks", json={"url": url}, token=token)).status == 201
    created = await client.post("/challenges", json={"mode": "SOLO", "title": "hooked"}, token=token)
    assert created.status == 201
    await client.adapter.drain()  # the deferred work the response started, like ctx.waitUntil
    assert [event["type"] for event in received] == ["challenge.created"]
    assert received[0]["data"]["challenge_id"] == created.json()["id"]


async def test_failed_requests_start_nothing(client, make_user, env_vars, receiver):
    env_vars["ALLOW_INSECURE_WEBHOOKS"] = "true"
    env_vars["RELAY_DISPATCH_AFTER_RESPONSE"] = "true"
    url, received = receiver
    _, token = await make_user()
    await client.post("/webhooks", json={"url": url}, token=token)
    await client.post("/challenges", json={"mode": "DUEL", "title": "x"}, token=token)
    await client.adapter.drain()
    assert received == []
