"""Webhook dispatch throughput: deliveries/s from the relay dispatcher to a local receiver on 127.0.0.1.

Run: ``.venv/bin/python bench/webhooks.py [--events 1000] [--endpoints 4] [--verify]``. Builds a fresh
migrated SQLite database, one user with N endpoints pointing at a receiver in a separate process
(asyncio, HTTP/1.1 keep-alive, 204 answers; with --verify it checks every signature with the
`standardwebhooks` library), writes the events through the outbox helper (untimed), then times the
production dispatcher — ``relay.jobs.dispatch_pending`` with its default bounds (100 events fanned out
and up to 200 attempts sent per call), called back to back as the cron job and after-response hook would —
until every delivery is DELIVERED. Prints deliveries/s, dispatcher calls and attempt latency
percentiles. Bounded: stops after --max-seconds (default 50) whatever happened.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import secrets
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
for entry in (str(ROOT / "src"), str(ROOT)):
    if entry not in sys.path:
        sys.path.insert(0, entry)

from core.clock import SystemClock  # noqa: E402
from core.config import Env  # noqa: E402
from core.context import Services  # noqa: E402
from core.logging import Logger  # noqa: E402
from local.server import open_database  # noqa: E402
from relay import webhooks  # noqa: E402
from relay.jobs import dispatch_pending  # noqa: E402
from relay.outbox import event_statement  # noqa: E402
from relay.secretbox import key_ring  # noqa: E402

MIGRATIONS = ROOT / "db" / "migrations"


def receiver_main(port_out: Any, secrets_by_path: dict[str, str], verify: bool, counter: Any) -> None:
    """A minimal keep-alive HTTP/1.1 receiver: reads each request, optionally verifies it, answers 204."""
    from standardwebhooks.webhooks import Webhook

    checkers = {path: Webhook(secret) for path, secret in secrets_by_path.items()}

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                path = lines[0].split(" ")[1]
                headers = {}
                for line in lines[1:]:
                    if ":" in line:
                        name, value = line.split(":", 1)
                        headers[name.strip().lower()] = value.strip()
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                status = b"204 No Content"
                if verify:
                    try:
                        checkers[path].verify(body, headers)
                    except Exception:
                        status = b"400 Bad Request"
                with counter.get_lock():
                    counter.value += 1
                writer.write(b"HTTP/1.1 " + status + b"\r\ncontent-length: 0\r\n\r\n")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
            pass
        finally:
            writer.close()

    async def serve() -> None:
        server = await asyncio.start_server(handle, "127.0.0.1", 0, backlog=1024)
        port_out.put(server.sockets[0].getsockname()[1])
        async with server:
            await server.serve_forever()

    asyncio.run(serve())


def percentile(samples: list[int], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))]


async def run(events: int, endpoints: int, verify: bool, max_seconds: float) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-webhooks-") as workdir:
        env = Env({"FF_WEBHOOKS": "true", "ALLOW_INSECURE_WEBHOOKS": "true", "HMAC_SECRET": secrets.token_hex(32)})
        services = Services(
            env=env,
            db=open_database(Path(workdir) / "d1.sqlite", MIGRATIONS),
            clock=SystemClock(),
            logger=Logger(lambda line: None),
        )
        db, now = services.db, services.now()
        user_id = "00000000-0000-4000-8000-000000000001"
        await (
            db.prepare("INSERT INTO users (id, created_at, updated_at) VALUES (?, ?, ?)")
            .bind(user_id, "2026-01-01T00:00:00.000Z", "2026-01-01T00:00:00.000Z")
            .run()
        )
        # Endpoints first (their secrets go to the receiver), pointing at a port chosen afterwards.
        secrets_by_path: dict[str, str] = {}
        endpoint_ids = []
        for index in range(endpoints):
            endpoint, secret = await webhooks.create_endpoint(
                db, key_ring(env), user_id, f"http://127.0.0.1:1/hook/{index}", None, None, now, allow_insecure=True
            )
            endpoint_ids.append(endpoint.id)
            secrets_by_path[f"/hook/{index}"] = secret
        context = multiprocessing.get_context("spawn")
        port_queue, counter = context.Queue(), context.Value("i", 0)
        receiver = context.Process(
            target=receiver_main, args=(port_queue, secrets_by_path, verify, counter), daemon=True
        )
        receiver.start()
        try:
            port = port_queue.get(timeout=20)
            for index, endpoint_id in enumerate(endpoint_ids):
                await (
                    db.prepare("UPDATE webhook_endpoints SET url = ? WHERE id = ?")
                    .bind(f"http://127.0.0.1:{port}/hook/{index}", endpoint_id)
                    .run()
                )
            for start in range(0, events, 100):
                await db.batch(
                    [
                        event_statement(
                            db, "wallet.verified", {"n": n, "wallet_address": "0x" + "ab" * 20}, now, user_id=user_id
                        )
                        for n in range(start, min(start + 100, events))
                    ]
                )
            expected = events * endpoints
            calls = 0
            started = time.perf_counter()
            while time.perf_counter() - started < max_seconds:
                await dispatch_pending(services)
                calls += 1
                done = await db.prepare(
                    "SELECT COUNT(*) AS n FROM webhook_deliveries WHERE status = 'DELIVERED'"
                ).first()
                if done["n"] >= expected:
                    break
            elapsed = time.perf_counter() - started
            statuses = (
                await db.prepare("SELECT status, COUNT(*) AS n FROM webhook_deliveries GROUP BY status").all()
            ).results
            durations = [
                row["duration_ms"]
                for row in (await db.prepare("SELECT duration_ms FROM webhook_attempts").all()).results
            ]
            attempts = len(durations)
        finally:
            receiver.terminate()
            receiver.join(5)
            await services.http.aclose()
            db.close()
    delivered = next((row["n"] for row in statuses if row["status"] == "DELIVERED"), 0)
    return {
        "events": events,
        "endpoints": endpoints,
        "expected": expected,
        "delivered": delivered,
        "statuses": {row["status"]: row["n"] for row in statuses},
        "attempts": attempts,
        "received": counter.value,
        "calls": calls,
        "seconds": elapsed,
        "per_second": delivered / elapsed if elapsed else 0.0,
        "p50_ms": percentile(durations, 0.5) if durations else 0.0,
        "p95_ms": percentile(durations, 0.95) if durations else 0.0,
        "mean_ms": statistics.fmean(durations) if durations else 0.0,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=1000)
    parser.add_argument("--endpoints", type=int, default=4)
    parser.add_argument("--verify", action="store_true", help="verify every signature in the receiver")
    parser.add_argument("--max-seconds", type=float, default=50.0)
    args = parser.parse_args()
    result = asyncio.run(run(args.events, args.endpoints, args.verify, args.max_seconds))
    print(
        f"webhooks: {result['delivered']}/{result['expected']} deliveries ({result['events']} events x "
        f"{result['endpoints']} endpoints) in {result['seconds']:.2f} s = {result['per_second']:.0f} deliveries/s"
    )
    print(
        f"  dispatcher calls: {result['calls']}, attempts recorded: {result['attempts']}, "
        f"requests received: {result['received']}, statuses: {result['statuses']}"
    )
    print(
        f"  attempt latency: p50 {result['p50_ms']:.0f} ms, p95 {result['p95_ms']:.0f} ms, "
        f"mean {result['mean_ms']:.1f} ms; receiver signature checks: {'on' if args.verify else 'off'}"
    )
    if result["delivered"] != result["expected"] or result["received"] != result["attempts"]:
        sys.exit(1)


if __name__ == "__main__":
    main()
