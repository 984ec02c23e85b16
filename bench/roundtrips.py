"""Round-trip bench (issue 13): each endpoint's sequential D1 round trips, counted and timed under injected latency."""

# Run: PYTHONPATH=src .venv/bin/python bench/roundtrips.py [--latency-ms 40] [--runs 3]   (or: make roundtrips)
#
# 1. Counted: the walk of tests/support/roundtrips.py (every route, all four modes' actions) against the in-process
#    app with a counting Database (each awaited first/all/run/batch = 1 round trip; overlapping calls = 1).
# 2. Measured: the same walk over HTTP against the local server (`python -m local.cli dev`, as `make dev`) with
#    LOCAL_D1_LATENCY_MS injected into every D1 call; each endpoint's median time over --runs walks ÷ the latency.
#    Chain calls (anvil on loopback) and HTTP add a little on top, so measured ≈ counted + a few tenths at most.
# The target column is what tests/test_roundtrips.py enforces: reads 1, writes 2, or a named exception.
# Work after the response (relay dispatch, ctx.waitUntil) is off here and never counted: the user does not wait.

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "src"), str(ROOT)]

from local.anvil import AnvilNode  # noqa: E402
from tests.conftest import ADMIN_TOKEN  # noqa: E402
from tests.support.roundtrips import TimingApi, count_walk, target, walk, walk_vars  # noqa: E402
from tests.support.server import LiveServer  # noqa: E402
from tests.test_roundtrips import EXPECTED, NOT_YET_AT_TARGET, TARGET_EXCEPTIONS  # noqa: E402

COMMAND = "PYTHONPATH=src .venv/bin/python bench/roundtrips.py"


async def timed_walks(url: str, chain: AnvilNode, runs: int) -> dict[str, list[float]]:
    """Each labelled request's seconds over `runs` walks against the server at `url` (fresh users each walk)."""
    seconds: dict[str, list[float]] = {}
    async with httpx.AsyncClient(base_url=url, timeout=60) as http:
        for run in range(runs):
            api = TimingApi(http)
            await walk(api, chain, ADMIN_TOKEN, tag=f"+run{run}")
            for label, elapsed in api.seconds.items():
                seconds.setdefault(label, []).append(elapsed)
    return seconds


def target_text(label: str) -> str:
    if label in TARGET_EXCEPTIONS:
        allowance, reason = TARGET_EXCEPTIONS[label]
        return f"{allowance} (exception: {reason})"
    text = f"{target(label)} ({'read' if target(label) == 1 else 'write'})"
    if label in NOT_YET_AT_TARGET:
        text += f" NOT YET: {NOT_YET_AT_TARGET[label]}"
    return text


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--latency-ms", type=int, default=40, help="injected D1 latency per call (default 40)")
    parser.add_argument("--runs", type=int, default=3, help="timed walks; the median is shown (default 3)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="roundtrips-") as folder, AnvilNode() as chain:
        workdir = Path(folder)
        counts = asyncio.run(count_walk(workdir / "counted.sqlite", chain)).counts
        server = LiveServer(workdir, {**walk_vars(chain.url), "LOCAL_D1_LATENCY_MS": str(args.latency_ms)})
        server.start()
        try:
            seconds = asyncio.run(timed_walks(server.url, chain, args.runs))
        finally:
            server.stop()
    width = max(len(label) for label in counts)
    print(f"{'endpoint':<{width}}  counted  measured÷{args.latency_ms}ms  target")
    over = 0
    for label, count in counts.items():
        measured = statistics.median(seconds.get(label, [0.0])) * 1000 / args.latency_ms
        limit = TARGET_EXCEPTIONS[label][0] if label in TARGET_EXCEPTIONS else target(label)
        over += count > limit
        flag = " " if count <= limit else "!"
        print(f"{label:<{width}}  {count:>6}{flag}  {measured:>14.1f}  {target_text(label)}")
    stale = sorted(label for label in counts if EXPECTED.get(label) != counts[label])
    print(
        f"\n{len(counts)} endpoints, {over} over target (!), median of {args.runs} runs at {args.latency_ms} ms per D1 call."
    )
    if stale:
        print(f"tests/test_roundtrips.py EXPECTED differs for {len(stale)}: {', '.join(stale)}")
    print(f"Reproduce: {COMMAND} --latency-ms {args.latency_ms} --runs {args.runs}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
