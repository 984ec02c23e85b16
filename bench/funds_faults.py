"""Funds checks under injected RPC faults: correct answers and latency per fault mix (issue 14 items 2 and 3).

Run: ``.venv/bin/python bench/funds_faults.py [--checks N] [--seed S]``. Starts a local anvil chain, a
second anvil on another chain id, and for every mix a fresh real dev server (uvicorn, as ``make dev``
runs it; fresh so no mix inherits another's endpoint health) whose ``RPC_URL_LOCAL`` lists the project's
fault-injecting proxy (tests/support/faultproxy.py) in front of anvil FIRST and anvil itself as a healthy
second provider (in the last two mixes, a second proxy with its own faults). Then N sequential
``POST /gatekeeper/v2/funds/check``, paced at --rate per second so the breaker's 10 s cool-downs expire
and the flaky provider keeps being tried again, against pre-funded wallets whose PASSED/FAILED answer is
known: a check is correct when it is 200 with that answer. Prints the success rate, 502s, p50/p99/max
latency and the faults each proxy injected ("1:" first provider, "2:" second). RPC_TIMEOUT_SECONDS is 2
(production default 10) so that the rare check whose every attempt stalls ends in seconds. Everything is on
127.0.0.1, every loop is bounded, and all processes stop at the end (stalled requests are released).

Target (issue 14): "one provider dropping 50 % + a healthy second": >= 99.5 % correct and p99 < 200 ms.
"""

from __future__ import annotations

import argparse
import secrets
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
for entry in (str(ROOT / "src"), str(ROOT)):
    if entry not in sys.path:
        sys.path.insert(0, entry)

import httpx  # noqa: E402

from bench.limits import UNLIMITED  # noqa: E402
from local.anvil import AnvilNode  # noqa: E402
from tests.support.faultproxy import FaultMix, FaultProxy  # noqa: E402
from tests.support.server import LiveServer  # noqa: E402

WALLETS = 40
WARMUP = 3  # first checks of each server (imports, first connections): not measured
TARGET_MIX = "drop 50% + healthy second"
TARGET_CORRECT = 99.5
TARGET_P99_MS = 200.0
RPC_TIMEOUT_SECONDS = 2


@dataclass(frozen=True)
class Scenario:
    name: str
    mix: FaultMix
    another_chain_first: bool = False
    # Faults of the second provider too (through a second proxy); None: anvil directly, healthy.
    second: FaultMix | None = None


SCENARIOS = (
    Scenario("no faults", FaultMix()),
    Scenario(TARGET_MIX, FaultMix(drop=0.5)),
    Scenario("http 500 50%", FaultMix(http_500=0.5)),
    Scenario("stall 15 s 20%", FaultMix(stall=0.2, stall_seconds=15.0)),
    Scenario("json-rpc error 50%", FaultMix(rpc_error=0.5)),
    Scenario("wrong request id 50%", FaultMix(wrong_id=0.5)),
    Scenario("wrong chain id 100%", FaultMix(wrong_chain=1.0)),
    Scenario("another chain first", FaultMix(), another_chain_first=True),
    Scenario(
        "mixed 10% each",
        FaultMix(drop=0.1, http_500=0.1, stall=0.1, rpc_error=0.1, wrong_id=0.1, stall_seconds=15.0),
    ),
    # Both providers flaky: the health memory cannot simply settle on one of them.
    Scenario("drop 50% + second drop 10%", FaultMix(drop=0.5), second=FaultMix(drop=0.1)),
    Scenario("stall 50% + second stall 10%", FaultMix(stall=0.5), second=FaultMix(stall=0.1)),
)


@dataclass
class Outcome:
    name: str
    checks: int
    correct: int
    status_502: int
    other: int
    p50: float
    p99: float
    worst: float
    faults: dict[str, int]

    @property
    def rate(self) -> float:
        return 100.0 * self.correct / self.checks if self.checks else 0.0


def percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    index = min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))
    return ordered[index]


def run_scenario(
    scenario: Scenario,
    checks: int,
    rate: float,
    chain: AnvilNode,
    other: AnvilNode,
    wallets: list[tuple[str, int]],
    seed: int,
) -> Outcome:
    with (
        FaultProxy(other.url if scenario.another_chain_first else chain.url, scenario.mix, seed=seed) as proxy,
        FaultProxy(chain.url, scenario.second or FaultMix(), seed=seed + 1) as second,
        tempfile.TemporaryDirectory(prefix="bench-faults-") as workdir,
    ):
        second_url = second.url if scenario.second is not None else chain.url
        env = {
            "HMAC_SECRET": secrets.token_hex(32),
            **UNLIMITED,
            "FF_GATEKEEPER_V2": "true",
            "RPC_URL_LOCAL": f"{proxy.url},{second_url}",
            "RPC_PUBLIC_FALLBACKS": "false",
            # 2 s per attempt instead of 10: a stall on both providers at once then costs seconds, not tens.
            "RPC_TIMEOUT_SECONDS": str(RPC_TIMEOUT_SECONDS),
        }
        server = LiveServer(Path(workdir), env).start()
        try:
            latencies: list[float] = []
            correct = status_502 = other_errors = 0
            with httpx.Client(base_url=server.url, trust_env=False, timeout=60) as api:
                began = time.perf_counter()
                for number in range(WARMUP + checks):
                    if number == WARMUP:
                        began = time.perf_counter()
                    # Paced: checks arrive at `rate` per second, so the breaker's cool-downs come and go.
                    if number >= WARMUP:
                        time.sleep(max(0.0, began + (number - WARMUP) / rate - time.perf_counter()))
                    wallet, balance = wallets[number % len(wallets)]
                    threshold = balance if number % 2 else balance + 1
                    body = {
                        "wallet_address": wallet,
                        "network": "local",
                        "asset_type": "NATIVE",
                        "min_balance": str(threshold),
                    }
                    started = time.perf_counter()
                    response = api.post("/gatekeeper/v2/funds/check", json=body)
                    elapsed = (time.perf_counter() - started) * 1000
                    if number < WARMUP:
                        continue
                    latencies.append(elapsed)
                    expected = "PASSED" if balance >= threshold else "FAILED"
                    if response.status_code == 200 and response.json().get("status") == expected:
                        correct += 1
                    elif response.status_code == 502:
                        status_502 += 1
                    else:
                        other_errors += 1
        finally:
            server.stop()
        faults = {f"1:{name}": count for name, count in proxy.counts.items()}
        faults |= {f"2:{name}": count for name, count in second.counts.items()}
    return Outcome(
        scenario.name,
        checks,
        correct,
        status_502,
        other_errors,
        percentile(latencies, 0.50),
        percentile(latencies, 0.99),
        max(latencies),
        faults,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checks", type=int, default=600, help="measured checks per mix (default 600)")
    parser.add_argument("--rate", type=float, default=40.0, help="checks per second (default 40)")
    parser.add_argument("--seed", type=int, default=14, help="the proxy's fault draw (default 14)")
    parser.add_argument("--only", default=None, help="run only the mixes whose name contains this text")
    args = parser.parse_args()
    checks = max(1, min(args.checks, 20_000))
    rate = max(1.0, min(args.rate, 1000.0))
    scenarios = [s for s in SCENARIOS if args.only is None or args.only in s.name]
    started = time.perf_counter()
    outcomes: list[Outcome] = []
    with AnvilNode() as chain, AnvilNode(chain_id=84532) as other:
        wallets = []
        for _ in range(WALLETS):
            wallet = "0x" + secrets.token_hex(20)
            balance = secrets.randbelow(10**18) + 1
            chain.set_balance(wallet, balance)
            # On the other chain every threshold falls the other way: its answers would be wrong ones.
            other.set_balance(wallet, 0 if balance > 10**17 else 10**19)
            wallets.append((wallet, balance))
        chain.mine()
        # The other chain's head far above: one of its heads pinning a local read would be out of range.
        other.rpc("anvil_mine", [hex(chain.block_number() + 1000)])
        for scenario in scenarios:
            outcomes.append(run_scenario(scenario, checks, rate, chain, other, wallets, args.seed))

    print(
        f"funds checks under RPC faults: {checks} sequential checks per mix at {rate:g}/s "
        f"(after {WARMUP} warm-up), a fresh server per mix"
    )
    print("provider 1: fault proxy in front of anvil (or of another chain); provider 2: anvil (or a proxy before it)")
    print(f"{'mix':<28}{'correct %':>10}{'502':>6}{'other':>7}{'p50 ms':>9}{'p99 ms':>9}{'max ms':>9}  faults injected")
    for outcome in outcomes:
        faults = ", ".join(f"{name} {count}" for name, count in sorted(outcome.faults.items()))
        print(
            f"{outcome.name:<28}{outcome.rate:>10.2f}{outcome.status_502:>6}{outcome.other:>7}"
            f"{outcome.p50:>9.1f}{outcome.p99:>9.1f}{outcome.worst:>9.1f}  {faults}"
        )
    target = next((outcome for outcome in outcomes if outcome.name == TARGET_MIX), None)
    if target is not None:
        met = target.rate >= TARGET_CORRECT and target.p99 < TARGET_P99_MS
        print(
            f"target ({TARGET_MIX}): >= {TARGET_CORRECT} % correct and p99 < {TARGET_P99_MS:g} ms: "
            f"{'met' if met else 'NOT met'} ({target.rate:.2f} %, p99 {target.p99:.1f} ms)"
        )
    print(f"total runtime {time.perf_counter() - started:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
