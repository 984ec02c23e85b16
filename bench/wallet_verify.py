"""Wallet verify throughput: verifies/s through POST /gatekeeper/v2/wallet/verify vs raw signer recovery.

Starts the real local server (the same CLI as `make dev`, via tests/support/server.py's LiveServer) on a
fresh database, creates challenges and signs them with eth-account beforehand (untimed), then times the
verify calls with N concurrent HTTP requests. In the same run it measures raw EIP-191 signer recovery
with chain.signatures' CoinCurveBackend and PureBackend, and prints the ratio endpoint / raw coincurve.

    .venv/bin/python bench/wallet_verify.py [--requests 3000] [--concurrency 32] [--url http://127.0.0.1:8787]

With --url it benchmarks an already running server instead (FF_GATEKEEPER_V2 must be on there, and a
rate limiter, if configured, will cap what it can show). Runtime stays well under a minute by default.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
for entry in (str(ROOT / "src"), str(ROOT)):
    if entry not in sys.path:
        sys.path.insert(0, entry)

import httpx  # noqa: E402
from eth_account import Account  # noqa: E402
from eth_account.messages import encode_defunct  # noqa: E402

from bench.limits import UNLIMITED  # noqa: E402
from chain.signatures import (  # noqa: E402
    CoinCurveBackend,
    PureBackend,
    RecoveryBackend,
    eip191_message_hash,
    recover_address,
)

Result = tuple[float, list[float], Counter[int]]
CHALLENGE = "/gatekeeper/v2/wallet/challenge"
VERIFY = "/gatekeeper/v2/wallet/verify"


def server_vars() -> dict[str, str]:
    return {
        "HMAC_SECRET": secrets.token_hex(32),
        **UNLIMITED,
        "ADMIN_TOKEN": secrets.token_hex(16),
        "FF_GATEKEEPER_V2": "true",
        "WALLET_CHALLENGE_TTL_SECONDS": "600",
        # EOA verification needs no RPC; keep any stray call on loopback, never a public provider.
        "RPC_PUBLIC_FALLBACKS": "false",
        "RPC_URL_ETH_MAINNET": "http://127.0.0.1:9/",
    }


def wallet_sign(message: str, key: bytes) -> str:
    signature = Account.sign_message(encode_defunct(text=message), private_key=key).signature.hex()
    return signature if signature.startswith("0x") else "0x" + signature


async def prepare(http: httpx.AsyncClient, count: int, concurrency: int) -> list[dict[str, str]]:
    """Create `count` challenges (one wallet each, so every verify also creates a user) and sign them."""
    keys = [secrets.token_bytes(32) for _ in range(count)]
    gate = asyncio.Semaphore(concurrency)

    async def one(key: bytes) -> dict[str, Any]:
        async with gate:
            address = Account.from_key(key).address
            response = await http.post(CHALLENGE, json={"wallet_address": address, "chain_id": "eip155:1"})
        response.raise_for_status()
        return response.json()

    challenges = await asyncio.gather(*(one(key) for key in keys))
    return [
        {"challenge_id": challenge["challenge_id"], "signature": wallet_sign(challenge["message"], key)}
        for challenge, key in zip(challenges, keys, strict=True)
    ]


class RawConnection:
    """A minimal HTTP/1.1 keep-alive client connection (one request in flight), like wrk's.

    httpx spends ~1.8 ms of CPU per request here, more than the server does, and the two share the
    machine's cores; a client that costs almost nothing shows what the server itself can do.
    """

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def post(self, path: str, body: bytes) -> int:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        head = (
            f"POST {path} HTTP/1.1\r\nhost: {self.host}:{self.port}\r\ncontent-type: application/json\r\n"
            f"content-length: {len(body)}\r\n\r\n"
        )
        self.writer.write(head.encode() + body)
        raw_head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(raw_head[9:12])
        length: int | None = None
        for line in raw_head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        if length is not None:
            await self.reader.readexactly(length)
            return status
        # No content-length (the ASGI adapter sends none): uvicorn frames the body as chunked.
        while True:
            size = int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16)
            await self.reader.readexactly(size + 2)
            if size == 0:
                return status

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            await self.writer.wait_closed()


async def time_verifies(
    url: str, http: httpx.AsyncClient, bodies: list[dict[str, str]], concurrency: int, client: str
) -> tuple[float, list[float], Counter[int]]:
    """Run every verify with `concurrency` requests in flight; return (seconds, latencies, statuses)."""
    parts = httpx.URL(url)
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    for body in bodies:
        queue.put_nowait(json.dumps(body).encode())
    latencies: list[float] = []
    statuses: Counter[int] = Counter()
    connections = [RawConnection(parts.host, parts.port or 80) for _ in range(concurrency)]

    async def worker(connection: RawConnection) -> None:
        while not queue.empty():
            body = queue.get_nowait()
            started = time.perf_counter()
            if client == "raw":
                status = await connection.post(VERIFY, body)
            else:
                status = (
                    await http.post(VERIFY, content=body, headers={"content-type": "application/json"})
                ).status_code
            latencies.append(time.perf_counter() - started)
            statuses[status] += 1

    started = time.perf_counter()
    await asyncio.gather(*(worker(connection) for connection in connections))
    elapsed = time.perf_counter() - started
    await asyncio.gather(*(connection.close() for connection in connections))
    return elapsed, latencies, statuses


def raw_recovery_rate(backend: RecoveryBackend, samples: list[tuple[bytes, str, str]], budget: float) -> float:
    """Recoveries per second of `backend` over real wallet signatures, for about `budget` seconds."""
    done = 0
    started = time.perf_counter()
    while True:
        for digest, signature, expected in samples:
            if recover_address(digest, signature, backend=backend) != expected:
                raise AssertionError(f"{backend.name} recovered the wrong address")
            done += 1
        elapsed = time.perf_counter() - started
        if elapsed >= budget:
            return done / elapsed


def recovery_samples(count: int = 64) -> list[tuple[bytes, str, str]]:
    samples = []
    for index in range(count):
        key = secrets.token_bytes(32)
        message = f"TattleHash Gatekeeper — wallet ownership\nNonce: {secrets.token_hex(16)}\n#{index}"
        samples.append((eip191_message_hash(message), wallet_sign(message, key), Account.from_key(key).address.lower()))
    return samples


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


async def bench_endpoint(url: str, requests: int, concurrency: int, clients: list[str]) -> dict[str, Result]:
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    results: dict[str, Result] = {}
    async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as http:
        for client in clients:
            print(f"[{client}] preparing {requests} signed challenges ...", flush=True)
            bodies = await prepare(http, requests, concurrency)
            # A short warm-up so connection set-up and first-call imports are not in the timed window.
            warm = await prepare(http, min(concurrency, 50), concurrency)
            await time_verifies(url, http, warm, concurrency, client)
            print(f"[{client}] timing {requests} verifies with {concurrency} concurrent requests ...", flush=True)
            results[client] = await time_verifies(url, http, bodies, concurrency, client)
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=3000, help="verify calls to time per client (default 3000)")
    parser.add_argument("--concurrency", type=int, default=32, help="requests in flight (default 32)")
    parser.add_argument(
        "--client",
        choices=["raw", "httpx", "both"],
        default="both",
        help="raw keep-alive sockets (server-bound), httpx.AsyncClient (client-bound here), or both (default)",
    )
    parser.add_argument("--url", help="benchmark this running server instead of starting one")
    parser.add_argument("--raw-seconds", type=float, default=2.0, help="time budget per raw backend")
    args = parser.parse_args()
    clients = ["raw", "httpx"] if args.client == "both" else [args.client]

    server = None
    if args.url is None:
        from tests.support.server import LiveServer

        workdir = Path(tempfile.mkdtemp(prefix="bench-wallet-"))
        server = LiveServer(workdir, server_vars()).start()
        url = server.url
    else:
        url = args.url.rstrip("/")
    try:
        results = asyncio.run(bench_endpoint(url, args.requests, args.concurrency, clients))
    finally:
        if server is not None:
            server.stop()

    samples = recovery_samples()
    coincurve_rate = raw_recovery_rate(CoinCurveBackend(), samples, args.raw_seconds)
    pure_rate = raw_recovery_rate(PureBackend(), samples[:16], args.raw_seconds)

    print()
    failed = False
    best = 0.0
    for client, (seconds, latencies, statuses) in results.items():
        rate = args.requests / seconds
        best = max(best, rate)
        print(
            f"endpoint [{client:5}] POST {VERIFY}: {rate:,.0f} verifies/s"
            f"  ({args.requests} in {seconds:.2f} s, concurrency {args.concurrency})"
        )
        print(
            f"                 latency p50 {percentile(latencies, 0.5) * 1000:.1f} ms"
            f"  p95 {percentile(latencies, 0.95) * 1000:.1f} ms  p99 {percentile(latencies, 0.99) * 1000:.1f} ms"
            f"  mean {statistics.fmean(latencies) * 1000:.1f} ms  statuses {dict(sorted(statuses.items()))}"
        )
        failed = failed or set(statuses) != {200}
    print(f"raw recovery     CoinCurveBackend: {coincurve_rate:,.0f} recoveries/s")
    print(f"raw recovery     PureBackend:      {pure_rate:,.0f} recoveries/s")
    for client, (seconds, _, _) in results.items():
        rate = args.requests / seconds
        print(f"ratio [{client:5}]  endpoint / raw coincurve = {rate / coincurve_rate:.3f}  (target >= 0.3)")
    print(f"ratio            best endpoint / raw pure = {best / pure_rate:.1f}")
    if failed:
        print("error: not every verify returned 200", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
