"""Funds-check latency on a local anvil chain, next to a bare eth_getBalance round trip to the same node.

Run: ``.venv/bin/python bench/funds_check.py [--iterations N]``. Starts anvil and the real dev server
(uvicorn over HTTP, as ``make dev`` runs it), then alternates one bare ``eth_getBalance`` (plain httpx
to anvil) with one ``POST /gatekeeper/v2/funds/check`` so both see the same machine state. A funds
check costs two node round trips by design (block number, then one batch pinned to it), plus the
API's own HTTP hop, validation and the attestation write: expect a single-digit multiple.
"""

from __future__ import annotations

import argparse
import secrets
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
for entry in (str(ROOT / "src"), str(ROOT)):
    if entry not in sys.path:
        sys.path.insert(0, entry)

import httpx  # noqa: E402

from bench.limits import UNLIMITED  # noqa: E402
from local.anvil import AnvilNode  # noqa: E402
from tests.support.server import LiveServer  # noqa: E402

WARMUP = 20


def percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    index = min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))
    return ordered[index]


def timed(action: Callable[[], None]) -> float:
    started = time.perf_counter()
    action()
    return (time.perf_counter() - started) * 1000


def run(iterations: int) -> dict[str, dict[str, float]]:
    """Measure both paths `iterations` times each; returns {name: {p50, p95, mean}} in milliseconds."""
    wallet = "0x" + secrets.token_hex(20)
    with AnvilNode() as node, tempfile.TemporaryDirectory(prefix="bench-funds-") as workdir:
        node.set_balance(wallet, 10**18)
        env = {
            "HMAC_SECRET": secrets.token_hex(32),
            **UNLIMITED,
            "FF_GATEKEEPER_V2": "true",
            "RPC_URL_LOCAL": node.url,
            "RPC_PUBLIC_FALLBACKS": "false",
        }
        server = LiveServer(Path(workdir), env).start()
        try:
            with (
                httpx.Client(base_url=node.url, trust_env=False, timeout=10) as chain,
                httpx.Client(base_url=server.url, trust_env=False, timeout=30) as api,
            ):
                body = {"wallet_address": wallet, "network": "local", "asset_type": "NATIVE", "min_balance": "1"}
                rpc = {"jsonrpc": "2.0", "id": 1, "method": "eth_getBalance", "params": [wallet, "latest"]}

                def bare() -> None:
                    chain.post("/", json=rpc).raise_for_status()

                def check() -> None:
                    response = api.post("/gatekeeper/v2/funds/check", json=body)
                    if response.status_code != 200 or response.json()["status"] != "PASSED":
                        raise RuntimeError(f"funds check failed: {response.status_code} {response.text}")

                for _ in range(WARMUP):
                    bare()
                    check()
                samples: dict[str, list[float]] = {"eth_getBalance": [], "funds_check": []}
                for _ in range(iterations):
                    samples["eth_getBalance"].append(timed(bare))
                    samples["funds_check"].append(timed(check))
        finally:
            server.stop()
    return {
        name: {
            "p50": percentile(values, 0.50),
            "p95": percentile(values, 0.95),
            "mean": statistics.fmean(values),
        }
        for name, values in samples.items()
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=300, help="measured requests per path (default 300)")
    args = parser.parse_args()
    started = time.perf_counter()
    results = run(args.iterations)
    print(
        f"funds check vs bare eth_getBalance on local anvil, {args.iterations} requests each (after {WARMUP} warm-up)"
    )
    print(f"{'path':<28}{'p50 ms':>10}{'p95 ms':>10}{'mean ms':>10}")
    for name, label in (("eth_getBalance", "bare eth_getBalance (RPC)"), ("funds_check", "POST /funds/check (API)")):
        stats = results[name]
        print(f"{label:<28}{stats['p50']:>10.2f}{stats['p95']:>10.2f}{stats['mean']:>10.2f}")
    bare, check = results["eth_getBalance"], results["funds_check"]
    print(f"overhead ratio (funds/bare): p50 {check['p50'] / bare['p50']:.1f}x, p95 {check['p95'] / bare['p95']:.1f}x")
    print(f"total runtime {time.perf_counter() - started:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
