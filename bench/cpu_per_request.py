"""CPU per request of the mixed-load endpoints, in process (no HTTP, no event-loop contention), for a tree.

Run: .venv/bin/python bench/cpu_per_request.py [--tree PATH] [--seed 200] [--requests 300] [--repeats 7]
     [--profile 'GET /health']

The app of `--tree` (default: this checkout; a `git worktree` of an older commit gives the baseline) is driven
through its ASGI adapter with the local SQLite database, as `make bench` drives it through uvicorn: GET /health,
POST wallet challenge, POST /challenges (SOLO), GET /challenges/{id}, GET /challenges?limit=10, after `--seed`
challenges of the caller. Prints, per endpoint, the process CPU time per request (min and median over `--repeats`
runs of `--requests` requests) and the SQL statements per request. `make bench`'s req/s on a shared 2-core machine
swing by a third between runs; these figures move by a few percent, so a regression shows here first.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import pstats
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--tree", type=Path, default=Path(__file__).resolve().parent.parent)
parser.add_argument("--seed", type=int, default=200)
parser.add_argument("--requests", type=int, default=300)
parser.add_argument("--repeats", type=int, default=7)
parser.add_argument("--profile", metavar="ENDPOINT", help="cProfile one endpoint (e.g. 'GET /health') instead")
ARGS = parser.parse_args()
sys.path[:0] = [str(ARGS.tree / "src"), str(ARGS.tree)]

from chain.blockcache import BlockCache  # noqa: E402
from core.clock import SystemClock  # noqa: E402
from core.config import Env  # noqa: E402
from core.context import Services  # noqa: E402
from core.logging import Logger  # noqa: E402
from core.ratelimit import SlidingWindowLimiter  # noqa: E402
from db import sqlite  # noqa: E402
from local.server import build_asgi, open_database  # noqa: E402
from tests.conftest import BASE_VARS, MIGRATIONS  # noqa: E402
from tests.support.client import ApiClient  # noqa: E402

WALLET = {"wallet_address": "0x" + "00" * 19 + "aa", "chain_id": "eip155:1"}


async def main() -> None:
    services = Services(
        env=Env(dict(BASE_VARS)),
        db=open_database(Path(tempfile.mkdtemp()) / "bench.sqlite", MIGRATIONS),
        clock=SystemClock(),
        logger=Logger(lambda line: None),
        rate_limiter=SlidingWindowLimiter(),
        block_cache=BlockCache(),
    )
    client = ApiClient(build_asgi(services))
    admin = BASE_VARS["ADMIN_TOKEN"]
    key = (await client.post("/admin/api-keys", json={}, token=admin)).json()["api_key"]
    ids = [
        (await client.post("/challenges", json={"mode": "SOLO", "title": "seed"}, token=key)).json()["id"]
        for _ in range(max(ARGS.seed, 1))
    ]
    endpoints = {
        "GET /health": lambda: client.get("/health"),
        "POST wallet/challenge": lambda: client.post("/gatekeeper/v2/wallet/challenge", json=WALLET),
        "POST /challenges": lambda: client.post("/challenges", json={"mode": "SOLO", "title": "b"}, token=key),
        "GET /challenges/{id}": lambda: client.get(f"/challenges/{ids[0]}", token=key),
        "GET /challenges?limit=10": lambda: client.get("/challenges", query={"limit": 10}, token=key),
    }
    executed = 0
    execute = sqlite.SqliteStatement.execute

    def counted(statement: sqlite.SqliteStatement, connection: object) -> object:
        nonlocal executed
        executed += 1
        return execute(statement, connection)  # type: ignore[arg-type]

    sqlite.SqliteStatement.execute = counted  # type: ignore[method-assign]
    if ARGS.profile is not None:
        await profile(endpoints[ARGS.profile])
        return
    print(f"tree {ARGS.tree}; {ARGS.repeats} runs of {ARGS.requests} requests each, after {ARGS.seed} challenges")
    for name, send in endpoints.items():
        for _ in range(50):  # warm-up
            answer = await send()
            if answer.status >= 300:
                raise SystemExit(f"{name}: {answer.status} {answer.json()}")
        runs = []
        executed = 0
        for _ in range(ARGS.repeats):
            started = time.process_time()
            for _ in range(ARGS.requests):
                await send()
            runs.append((time.process_time() - started) / ARGS.requests * 1e6)
        statements = executed / (ARGS.repeats * ARGS.requests)
        print(
            f"{name:<26} min {min(runs):7.1f} µs   median {statistics.median(runs):7.1f} µs"
            f"   {statements:.1f} statements"
        )


async def profile(send: Callable[[], Awaitable[object]]) -> None:
    """The functions one endpoint spends its time in, most own time first."""
    for _ in range(50):
        await send()
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(ARGS.requests * ARGS.repeats):
        await send()
    profiler.disable()
    pstats.Stats(profiler).sort_stats("tottime").print_stats(30)


asyncio.run(main())
