"""Shared helpers for the relay tests: real webhook receivers on 127.0.0.1 and small API/database shortcuts.

Every receiver verifies each delivery with the `standardwebhooks` reference library. Its replay window
is judged against the receiver's own wall clock; in these tests the whole world runs on the test's
ManualClock, so the library's notion of "now" is pointed at that clock too (`webhook_clock`).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import standardwebhooks.webhooks as standard
from standardwebhooks.webhooks import Webhook

from core.clock import ManualClock, parse_time


@dataclass
class Reply:
    """How a receiver answers one request."""

    status: int = 200
    body: bytes = b'{"ok":true}'
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0  # seconds before answering
    close: bool = False  # drop the connection without any answer
    stream_bytes: int = 0  # answer with a body this large, written in chunks until the client hangs up


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes
    payload: Any = None  # the verified, parsed body; None when verification failed
    error: str | None = None
    bytes_written: int = 0


class Receiver:
    """A threaded HTTP server on 127.0.0.1 with its own OS-assigned port."""

    def __init__(self, script: Callable[[int], Reply] | None = None) -> None:
        self.script = script or (lambda index: Reply())
        self.secret: str | None = None
        self.received: list[Received] = []
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:  # keep test output quiet
                return

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", "0"))
                body = self.rfile.read(length)
                headers = {name.lower(): value for name, value in self.headers.items()}
                record = Received(headers, body)
                try:
                    assert receiver.secret is not None, "receiver has no secret"
                    record.payload = Webhook(receiver.secret).verify(body, headers)
                except Exception as error:
                    record.error = f"{type(error).__name__}: {error}"
                with receiver._lock:
                    index = len(receiver.received)
                    receiver.received.append(record)
                reply = receiver.script(index)
                if reply.delay:
                    time.sleep(reply.delay)
                if reply.close:
                    self.close_connection = True
                    return
                self.send_response(reply.status)
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                size = reply.stream_bytes or len(reply.body)
                self.send_header("content-length", str(size))
                self.end_headers()
                try:
                    if reply.stream_bytes:
                        chunk = b"x" * 65536
                        while record.bytes_written < size:
                            self.wfile.write(chunk)
                            record.bytes_written += len(chunk)
                    else:
                        self.wfile.write(reply.body)
                        record.bytes_written = len(reply.body)
                except (BrokenPipeError, ConnectionResetError):
                    self.close_connection = True

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self._thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    @property
    def verified(self) -> list[Any]:
        """Parsed payloads of the deliveries that passed verification, in arrival order."""
        return [record.payload for record in self.received if record.error is None]


@pytest.fixture
def insecure_webhooks(env_vars: dict[str, str]) -> dict[str, str]:
    """http://127.0.0.1 receivers allowed (the development rule); set before services are built."""
    env_vars["ALLOW_INSECURE_WEBHOOKS"] = "true"
    return env_vars


@pytest.fixture
def webhook_clock(clock: ManualClock, monkeypatch: pytest.MonkeyPatch) -> ManualClock:
    """The reference library's replay check uses the test clock as the receiver's wall clock."""

    class ReceiverTime(datetime):
        @classmethod
        def now(cls, tz: Any = None) -> datetime:  # type: ignore[override]
            return clock.now()

    monkeypatch.setattr(standard, "datetime", ReceiverTime)
    return clock


@pytest.fixture
def receivers(insecure_webhooks: dict[str, str], webhook_clock: ManualClock) -> Iterator[Callable[..., Receiver]]:
    started: list[Receiver] = []

    def start(script: Callable[[int], Reply] | None = None) -> Receiver:
        receiver = Receiver(script)
        started.append(receiver)
        return receiver

    yield start
    for receiver in started:
        receiver.stop()


async def register(client: Any, token: str, receiver: Receiver | None = None, **body: Any) -> dict[str, Any]:
    """POST /webhooks (201) and hand the secret to the receiver."""
    if receiver is not None:
        body.setdefault("url", receiver.url)
    response = await client.post("/webhooks", json=body, token=token)
    assert response.status == 201, response.text
    created = response.json()
    if receiver is not None:
        receiver.secret = created["secret"]
    return created


async def solo(client: Any, token: str, title: str = "Run a marathon", *, confirm: bool = False) -> str:
    created = await client.post("/challenges", json={"mode": "SOLO", "title": title}, token=token)
    assert created.status == 201, created.text
    challenge_id = created.json()["id"]
    if confirm:
        confirmed = await client.post(f"/challenges/{challenge_id}/confirm", token=token)
        assert confirmed.status == 200, confirmed.text
    return challenge_id


async def rows(services: Any, sql: str, *params: Any) -> list[dict[str, Any]]:
    return (await services.db.prepare(sql).bind(*params).all()).results


async def deliveries_of(services: Any, endpoint_id: str) -> list[dict[str, Any]]:
    return await rows(
        services,
        "SELECT d.*, e.type AS event_type FROM webhook_deliveries d JOIN events e ON e.id = d.event_id"
        " WHERE d.endpoint_id = ? ORDER BY e.created_at, e.rowid",
        endpoint_id,
    )


async def attempts_of(services: Any, delivery_id: str) -> list[dict[str, Any]]:
    return await rows(
        services, "SELECT * FROM webhook_attempts WHERE delivery_id = ? ORDER BY attempt_number", delivery_id
    )


async def advance_to_next_attempt(services: Any, clock: ManualClock, delivery_id: str) -> float:
    """Move the clock exactly to the delivery's next attempt time; returns how many seconds that was."""
    row = (await rows(services, "SELECT next_attempt_at FROM webhook_deliveries WHERE id = ?", delivery_id))[0]
    target = parse_time(row["next_attempt_at"])
    seconds = (target - clock.now()).total_seconds()
    clock.set(target)
    return seconds


def event_types(payloads: list[Any]) -> list[str]:
    return [payload["type"] for payload in payloads]


def dumps(value: Any) -> str:
    return json.dumps(value, sort_keys=True)
