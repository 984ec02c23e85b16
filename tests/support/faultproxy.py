"""A fault-injecting JSON-RPC proxy on 127.0.0.1 in front of a node, shared by the tests and bench/funds_faults.py.

Each request is forwarded to the upstream node, or instead (chosen per request from a seeded random and
the current FaultMix) dropped, answered HTTP 500, stalled then dropped, answered with a JSON-RPC error,
given another chain's id, or given wrong response ids. With `batch_limit`, every batch of more calls than
that is refused as a provider over its limit does (counted as "batch_too_large"). It counts what it did, so a
test can assert how many requests reached it and a bench can report the faults it injected.
"""

from __future__ import annotations

import http.server
import json
import random
import socket
import struct
import threading
from collections import Counter
from dataclasses import dataclass
from typing import Any

import httpx

__all__ = ["BATCH_REFUSALS", "FaultMix", "FaultProxy"]

FAULTS = ("drop", "http_500", "stall", "rpc_error", "wrong_chain", "wrong_id")
# How a batch over the limit is refused: one error object with a null id (erigon, besu, nethermind, jsonrpsee
# and the example), or geth's one-item array carrying the error on the first call's id.
BATCH_REFUSALS = ("lone", "geth")
_TOO_LARGE = {"code": -32600, "message": "batch too large"}


@dataclass(frozen=True)
class FaultMix:
    """Probability of each fault per request (the rest are forwarded as they are)."""

    drop: float = 0.0  # the connection is reset without an answer
    http_500: float = 0.0
    stall: float = 0.0  # held `stall_seconds` (or until the proxy stops), then reset
    rpc_error: float = 0.0  # every item answered with -32603 internal error
    wrong_chain: float = 0.0  # eth_chainId answers `other_chain_id`
    wrong_id: float = 0.0  # every answer's id shifted: matches no request
    stall_seconds: float = 15.0
    other_chain_id: int = 8453

    def __post_init__(self) -> None:
        total = sum(getattr(self, name) for name in FAULTS)
        if not 0 <= total <= 1:
            raise ValueError("fault probabilities must add up to at most 1")


class FaultProxy:
    """`with FaultProxy(upstream, FaultMix(drop=0.5), seed=1) as proxy:` ... `proxy.url`, `proxy.counts`.

    `batch_limit=N` refuses every batch of more than N calls (`batch_refusal`: one of BATCH_REFUSALS);
    `batch_sizes` lists the number of calls of each batch received, in order.
    """

    def __init__(
        self,
        upstream: str,
        mix: FaultMix | None = None,
        *,
        seed: int = 0,
        batch_limit: int | None = None,
        batch_refusal: str = "lone",
    ) -> None:
        if batch_refusal not in BATCH_REFUSALS:
            raise ValueError(f"batch_refusal must be one of {BATCH_REFUSALS}")
        self.upstream = upstream
        self.mix = mix or FaultMix()
        self.batch_limit = batch_limit
        self.batch_refusal = batch_refusal
        self.batch_sizes: list[int] = []
        self.counts: Counter[str] = Counter()
        self.methods: Counter[str] = Counter()
        self._random = random.Random(seed)
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._local = threading.local()
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as real providers do
            # Headers and body go out as two writes: without TCP_NODELAY, Nagle and a delayed ACK add 40 ms.
            disable_nagle_algorithm = True

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                proxy._serve(self, body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.02,), daemon=True)

    @property
    def requests(self) -> int:
        """HTTP requests received so far (each batch is one)."""
        with self._lock:
            return sum(self.counts.values())

    def set_mix(self, mix: FaultMix) -> None:
        with self._lock:
            self.mix = mix

    def reset_counts(self) -> None:
        with self._lock:
            self.counts.clear()
            self.methods.clear()
            self.batch_sizes.clear()

    def __enter__(self) -> FaultProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stopping.set()  # releases stalled requests
        self._server.shutdown()
        self._server.server_close()

    # -- per request ------------------------------------------------------------------------------------

    def _choose(self, payload: Any) -> str:
        with self._lock:
            mix = self.mix
            for call in payload if isinstance(payload, list) else [payload]:
                if isinstance(call, dict):
                    self.methods[str(call.get("method"))] += 1
            if isinstance(payload, list):
                self.batch_sizes.append(len(payload))
                if self.batch_limit is not None and len(payload) > self.batch_limit:
                    # Deterministic, before the draw: a seeded fault sequence stays the same with or without it.
                    self.counts["batch_too_large"] += 1
                    return "batch_too_large"
            draw = self._random.random()
            chosen = "forward"
            for name in FAULTS:
                draw -= getattr(mix, name)
                if draw < 0:
                    chosen = name
                    break
            self.counts[chosen] += 1
            return chosen

    def _http(self) -> httpx.Client:
        client = getattr(self._local, "client", None)
        if client is None:
            client = httpx.Client(timeout=30.0, trust_env=False)
            self._local.client = client
        return client

    def _serve(self, handler: http.server.BaseHTTPRequestHandler, body: bytes) -> None:
        try:
            payload = json.loads(body)
        except ValueError:
            payload = None
        fault = self._choose(payload)
        if fault == "batch_too_large":
            calls = [call for call in _as_list(payload) if isinstance(call, dict)]
            if self.batch_refusal == "geth" and calls:
                _send_json(handler, [{"jsonrpc": "2.0", "id": calls[0].get("id"), "error": _TOO_LARGE}])
            else:
                _send_json(handler, {"jsonrpc": "2.0", "id": None, "error": _TOO_LARGE})
            return
        if fault == "stall":
            self._stopping.wait(self.mix.stall_seconds)
            fault = "drop"
        if fault == "drop":
            _reset(handler)
            return
        if fault == "http_500":
            _send(handler, 500, b"upstream broke")
            return
        if fault == "rpc_error":
            error = {"code": -32603, "message": "internal error"}
            _send_json(handler, _per_item(payload, lambda call: {"error": error}))
            return
        try:
            answer = self._http().post(self.upstream, content=body, headers={"content-type": "application/json"})
        except httpx.HTTPError:
            _reset(handler)
            return
        if fault == "forward":
            _send(handler, answer.status_code, answer.content)
            return
        items = answer.json()
        methods = {call.get("id"): call.get("method") for call in _as_list(payload) if isinstance(call, dict)}
        for item in _as_list(items):
            if fault == "wrong_chain" and methods.get(item.get("id")) == "eth_chainId" and "result" in item:
                item["result"] = hex(self.mix.other_chain_id)
            if fault == "wrong_id" and isinstance(item.get("id"), int):
                item["id"] += 1_000_000
        _send_json(handler, items)


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _per_item(payload: Any, answer: Any) -> Any:
    items = [{"jsonrpc": "2.0", "id": call.get("id"), **answer(call)} for call in _as_list(payload) if call]
    return items if isinstance(payload, list) else (items[0] if items else {})


def _send(handler: http.server.BaseHTTPRequestHandler, status: int, content: bytes) -> None:
    try:
        handler.send_response(status)
        handler.send_header("content-type", "application/json")
        handler.send_header("content-length", str(len(content)))
        handler.end_headers()
        handler.wfile.write(content)
    except OSError:
        handler.close_connection = True  # the client gave up (a hedge won elsewhere)


def _send_json(handler: http.server.BaseHTTPRequestHandler, value: Any) -> None:
    _send(handler, 200, json.dumps(value).encode())


def _reset(handler: http.server.BaseHTTPRequestHandler) -> None:
    # SO_LINGER 0: closing sends a TCP reset, as a provider's dropped connection does.
    handler.close_connection = True
    try:
        handler.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        handler.connection.close()
    except OSError:
        pass
