"""Edge peer bench (issue 17): this Python Worker against a minimal JS Worker doing the same work, both in workerd."""

# Run: PYTHONPATH=src .venv/bin/python bench/edge_peer.py [--rounds 3] [--health 60] [--verify 30] [--pairs 160]
#
# Both Workers run under `wrangler dev` (the pinned 4.86.0, workerd 1.20260426.1) with local D1, the same vars and
# unlimited rate-limit bindings: this one as deployed (src/entry.py + python_modules/), the peer from bench/peer_js/
# (wrangler bundles it with @noble/curves and @noble/hashes from node_modules). Each is launched alone first, timing
# launch → first answer; then both run and the warm phases alternate between them, round after round, so drift in
# the machine's load hits both alike:
#   - sequential, keep-alive: GET /health, wallet challenge, wallet verify (its challenge made and signed untimed);
#   - 8 concurrent clients doing whole pairs (challenge, sign, verify): verify latency and pairs/s.
# CPU per request is the CPU time of the Worker's workerd processes (/proc/<pid>/stat, utime + stime, all threads)
# over a phase, divided by its requests: "user" is the process that runs the Worker and its D1 (it holds the local
# database files), "all" adds wrangler's proxy workerd. wrangler's own node process is shown apart.
# A third Worker, the probe (a temporary copy of src/ with one extra entry module), is this one recovering signers
# with eth-keys as before issue 17 wired the bundled JS secp256k1 in; last, it times raw recovery inside the runtime
# per backend (the JS bundle over the FFI, chain.secp256k1_fast, eth-keys), like the peer's GET /__bench/recover.
# Every process it starts is stopped in a finally; the temporary folder is removed unless the run failed.

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import secrets
import shutil
import signal
import statistics
import sys
import tempfile
import time
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "src"), str(ROOT)]

import coincurve  # noqa: E402
import httpx  # noqa: E402
from eth_hash.auto import keccak  # noqa: E402

from bench.edge import EdgeWorker, percentile  # noqa: E402
from bench.limits import UNLIMITED as UVICORN_UNLIMITED  # noqa: E402
from tests.conftest import BASE_VARS  # noqa: E402
from tests.conftest import UNLIMITED as WORKERD_UNLIMITED  # noqa: E402
from tests.support.workerd import BUNDLE  # noqa: E402

PEER = ROOT / "bench" / "peer_js"
# The least any Python Worker does for the same health and challenge work: the SDK, no framework (bench/peer_py).
FLOOR = ROOT / "bench" / "peer_py"
CHALLENGE = "/gatekeeper/v2/wallet/challenge"
VERIFY = "/gatekeeper/v2/wallet/verify"
RECOVER = "/__bench/recover"
# The probe Worker's entry: the shipped adapter recovering signers with eth-keys (the pure-Python default before
# issue 17; patched in a temporary copy only), plus GET /__bench/recover?backend=&n= timing each backend raw.
PROBE_ENTRY = '''"""Bench probe (bench/edge_peer.py): src/entry.py's Worker recovering signers with eth-keys, and raw recovery."""

import functools
from urllib.parse import parse_qs, urlsplit

import js

import entry
from chain import signatures
from gatekeeper import wallet_api

HASH = bytes.fromhex("456e9aea5e197a1f1af7a3e85a3212fa4049a3ba34c2289b4c860fc0b0c64ef3")
R = 0x9242685BF161793CC25603C231BC2F568EB630EA16AA137D2664AC8038825608
S = 0x4F8AE3BD7535248D0BD448298CC2E2071E56992D0774DC340C368AE950852ADA
EXPECTED = "f57c1d4c961024e998eaec4b6bebec90e788ef5ade22e636ce76111b60db107d4c3404b9908a2f357c84ccb48cf412be41d09574a9291c9c7eb5173ccf2a339f"
BACKENDS = {"eth-keys": signatures.PureBackend, "fast": signatures.FastPureBackend, "js": signatures.JsBackend}


@functools.cache
def backend(name):
    return BACKENDS[name]()


wallet_api.default_backend = functools.partial(backend, "eth-keys")


class Default(entry.Default):
    async def fetch(self, request):
        url = urlsplit(str(request.js_object.url))
        if url.path != "/__bench/recover":
            return await super().fetch(request)
        query = {key: values[0] for key, values in parse_qs(url.query).items()}
        chosen = backend(query["backend"])
        for _ in range(int(query.get("n", "1"))):
            found = chosen.recover_public_key(HASH, R, S, 1)
        answer = chosen.name if found.hex() == EXPECTED else "wrong key"
        return js.Response.new(answer, js.Object.fromEntries([["status", 200]]))
'''


# --- processes and CPU -----------------------------------------------------------------------------------------


def group_cpu(pgid: int) -> dict[tuple[int, str], float]:
    """CPU seconds of every live process in a process group, by (pid, name): the sum of its threads' run time.

    /proc/<pid>/task/<tid>/schedstat counts nanoseconds; /proc/<pid>/stat's utime + stime only 10 ms ticks.
    """
    found: dict[tuple[int, str], float] = {}
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
            name = stat[stat.index("(") + 1 : stat.rindex(")")]
            if int(stat[stat.rindex(")") + 2 :].split()[2]) != pgid:
                continue
            run_ns = 0
            for tid in os.listdir(f"/proc/{pid}/task"):
                with contextlib.suppress(OSError):
                    run_ns += int(Path(f"/proc/{pid}/task/{tid}/schedstat").read_text().split()[0])
        except (OSError, ValueError):
            continue
        found[(int(pid), name)] = run_ns / 1e9
    return found


def holds_files_under(pid: int, folder: Path) -> bool:
    try:
        return any(str(folder) in os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return False


@dataclass
class Cpu:
    """CPU seconds of one Worker's processes over a phase."""

    user: float = 0.0  # the workerd running the Worker and its local D1
    all_workerd: float = 0.0
    node: float = 0.0

    def __add__(self, other: Cpu) -> Cpu:
        return Cpu(self.user + other.user, self.all_workerd + other.all_workerd, self.node + other.node)


class Meter:
    """Measures the CPU a Worker's processes spend in a block."""

    def __init__(self, worker: EdgeWorker) -> None:
        assert worker.process is not None
        self.pgid = worker.process.pid
        self.state = worker.state

    def user_pid(self) -> int | None:
        workerds = [pid for pid, name in group_cpu(self.pgid) if name == "workerd"]
        return next((pid for pid in workerds if holds_files_under(pid, self.state)), None)

    def snapshot(self) -> tuple[int | None, dict[tuple[int, str], float]]:
        return self.user_pid(), group_cpu(self.pgid)

    def since(self, snapshot: tuple[int | None, dict[tuple[int, str], float]]) -> Cpu:
        user, before = snapshot
        delta = {key: value - before.get(key, 0.0) for key, value in group_cpu(self.pgid).items()}
        return Cpu(
            user=sum(value for (pid, _), value in delta.items() if pid == user),
            all_workerd=sum(value for (_, name), value in delta.items() if name == "workerd"),
            node=sum(value for (_, name), value in delta.items() if name == "node"),
        )

    def measure(self, work: Callable[[], object]) -> Cpu:
        snapshot = self.snapshot()
        work()
        return self.since(snapshot)


# --- the workload --------------------------------------------------------------------------------------------


def personal_sign(key: coincurve.PrivateKey, message: str) -> str:
    data = message.encode()
    digest = keccak(b"\x19Ethereum Signed Message:\n" + str(len(data)).encode() + data)
    signature = key.sign_recoverable(digest, hasher=None)
    return "0x" + signature[:64].hex() + bytes((27 + signature[64],)).hex()


def new_wallet() -> tuple[coincurve.PrivateKey, dict[str, str]]:
    key = coincurve.PrivateKey(secrets.token_bytes(32))
    address = "0x" + keccak(key.public_key.format(compressed=False)[1:])[-20:].hex()
    return key, {"wallet_address": address, "chain_id": "eip155:1"}


def expect(response: httpx.Response, status: int) -> httpx.Response:
    if response.status_code != status:
        raise RuntimeError(f"{response.request.url.path}: {response.status_code}: {response.text[:400]}")
    return response


@dataclass
class Figures:
    """Everything measured on one Worker, accumulated over the rounds."""

    health: list[float] = field(default_factory=list)
    challenge: list[float] = field(default_factory=list)
    verify: list[float] = field(default_factory=list)
    concurrent_verify: list[float] = field(default_factory=list)
    health_cpu: Cpu = field(default_factory=Cpu)
    challenge_cpu: Cpu = field(default_factory=Cpu)
    verify_cpu: Cpu = field(default_factory=Cpu)
    pair_cpu: Cpu = field(default_factory=Cpu)
    pairs: int = 0
    pairs_seconds: float = 0.0
    recover: dict[str, float] = field(default_factory=dict)


def sequential_round(
    http: httpx.Client, meter: Meter, figures: Figures, args: argparse.Namespace, *, verify_too: bool = True
) -> None:
    def health() -> None:
        for _ in range(args.health):
            started = time.perf_counter()
            expect(http.get("/health"), 200)
            figures.health.append(time.perf_counter() - started)

    def challenge() -> None:
        for _ in range(args.verify):
            body = new_wallet()[1]
            started = time.perf_counter()
            expect(http.post(CHALLENGE, json=body), 201)
            figures.challenge.append(time.perf_counter() - started)

    signed = []
    for _ in range(args.verify if verify_too else 0):  # untimed, and outside every CPU window
        key, body = new_wallet()
        answer = expect(http.post(CHALLENGE, json=body), 201).json()
        signed.append({"challenge_id": answer["challenge_id"], "signature": personal_sign(key, answer["message"])})

    def verify() -> None:
        for body in signed:
            started = time.perf_counter()
            expect(http.post(VERIFY, json=body), 200)
            figures.verify.append(time.perf_counter() - started)

    figures.health_cpu += meter.measure(health)
    figures.challenge_cpu += meter.measure(challenge)
    if verify_too:
        figures.verify_cpu += meter.measure(verify)


async def concurrent_pairs(url: str, meter: Meter, figures: Figures, args: argparse.Namespace) -> None:
    """`concurrency` clients doing whole challenge → sign → verify pairs, after one warm-up pair each."""
    remaining = 0
    latencies: list[float] = []
    limits = httpx.Limits(max_connections=args.concurrency, max_keepalive_connections=args.concurrency)

    async def client(http: httpx.AsyncClient) -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            key, body = new_wallet()
            answer = expect(await http.post(CHALLENGE, json=body), 201).json()
            signed = {"challenge_id": answer["challenge_id"], "signature": personal_sign(key, answer["message"])}
            started = time.perf_counter()
            expect(await http.post(VERIFY, json=signed), 200)
            latencies.append(time.perf_counter() - started)

    async with httpx.AsyncClient(base_url=url, timeout=120, limits=limits) as http:
        remaining = args.concurrency
        await asyncio.gather(*(client(http) for _ in range(args.concurrency)))  # every connection open and warm
        latencies.clear()
        remaining = args.pairs
        snapshot = meter.snapshot()
        started = time.perf_counter()
        await asyncio.gather(*(client(http) for _ in range(args.concurrency)))
        figures.pairs_seconds += time.perf_counter() - started
        figures.pair_cpu += meter.since(snapshot)
    figures.concurrent_verify += latencies
    figures.pairs += args.pairs


# --- the Workers ---------------------------------------------------------------------------------------------


def peer_config(folder: Path) -> dict[str, object]:
    manifest = tomllib.loads((folder / "wrangler.toml").read_text())
    manifest["main"] = str(folder / manifest["main"])
    for database in manifest["d1_databases"]:
        database["migrations_dir"] = str(folder / database["migrations_dir"])
    for binding in manifest["ratelimits"]:
        binding["simple"]["limit"] = WORKERD_UNLIMITED[binding["name"]]
    return manifest


class PeerWorker(EdgeWorker):
    """A peer under `wrangler dev`, from its folder's wrangler.toml: bench/peer_js, or the Python floor."""

    def __init__(self, workdir: Path, env_vars: dict[str, str], folder: Path = PEER) -> None:
        super().__init__(workdir, env_vars, rate_limits=WORKERD_UNLIMITED)
        self.config = peer_config(folder)
        self.config_path.write_text(json.dumps(self.config, indent=2))


def probe_worker(workdir: Path, env_vars: dict[str, str], seed: Path) -> EdgeWorker:
    """A copy of src/ with the probe entry as main (wrangler.toml's rule uploads the JS secp256k1 bundle)."""
    source = workdir.parent / "src-probe"
    if not source.exists():
        shutil.copytree(ROOT / "src", source, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        (source / "bench_probe.py").write_text(PROBE_ENTRY)
    worker = EdgeWorker(
        workdir, env_vars, rate_limits=WORKERD_UNLIMITED, main=source / "bench_probe.py", seed_state=seed
    )
    return worker


def in_runtime_recovery(worker: EdgeWorker, backends: list[str], count: int) -> dict[str, float]:
    """CPU seconds per recovery in the Worker's workerd, per backend (after one warm-up call)."""
    meter = Meter(worker)
    found: dict[str, float] = {}
    with httpx.Client(base_url=worker.url, timeout=300) as http:
        for name in backends:
            query = {"backend": name, "n": "1"}
            answer = expect(http.get(RECOVER, params=query), 200)
            if "wrong" in answer.text:
                raise RuntimeError(f"in-runtime recovery {name}: answered {answer.text[:300]!r}")
            query["n"] = str(count)
            cpu = meter.measure(lambda query=query: expect(http.get(RECOVER, params=query), 200))
            found[name] = cpu.user / count
    return found


# --- the report ----------------------------------------------------------------------------------------------

# (name, column title): the peer first, then this Worker as shipped, then with eth-keys recovery (before issue 17).
WORKERS = (("js", "JS Worker"), ("py", "this Worker"), ("ethkeys", "eth-keys recovery"))


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


def report(figures: dict[str, Figures], args: argparse.Namespace, cold: dict[str, list[EdgeWorker]]) -> None:
    js = figures["js"]

    def p(values: list[float], fraction: float) -> float:
        return percentile(values, fraction)

    def line(
        label: str,
        cells: dict[str, str],
        ratios: dict[str, float],
        limit: float | None = None,
        *,
        at_least: bool = False,
    ) -> None:
        text = f"| {label:<46} | {cells['js']:>17} |"
        for name, _ in WORKERS[1:]:
            ratio = ratios.get(name)
            mark = ""
            if ratio is not None and limit is not None:
                mark = " ok" if (ratio >= limit if at_least else ratio <= limit) else " MISS"
            ratio_text = f"{ratio:.2f}x{mark}" if ratio is not None else ""
            text += f" {cells.get(name, ''):>17} | {ratio_text:>11} |"
        target = "" if limit is None else f" {'≥' if at_least else '≤'} {limit}x"
        print(text + target)

    def each(
        value: Callable[[Figures], float], show: Callable[[float], str]
    ) -> tuple[dict[str, str], dict[str, float]]:
        values = {name: value(figures[name]) for name, _ in WORKERS}
        return {name: show(v) for name, v in values.items()}, {name: v / values["js"] for name, v in values.items()}

    header = f"| {'':<46} | {WORKERS[0][1]:>17} |" + "".join(
        f" {title:>17} | {'ratio':>11} |" for _, title in WORKERS[1:]
    )
    print()
    print(header + " target")
    print("|" + "-" * (len(header) - 2) + "|-------")
    cells = {name: f"{ms(p(figures[name].verify, 0.5))} / {ms(p(figures[name].verify, 0.95))}" for name, _ in WORKERS}
    ratios = {name: p(figures[name].verify, 0.5) / p(js.verify, 0.5) for name, _ in WORKERS}
    line(f"verify p50 / p95, one at a time (n={len(js.verify)})", cells, ratios, 1.5)
    line(f"verify p50, {args.concurrency} concurrent", *each(lambda f: p(f.concurrent_verify, 0.5), ms))
    for label, pick, count, limit in (
        ("CPU per verify (workerd running the Worker)", lambda f: f.verify_cpu, len(js.verify), 2.0),
        ("CPU per challenge", lambda f: f.challenge_cpu, len(js.challenge), 2.0),
        ("CPU per /health", lambda f: f.health_cpu, len(js.health), None),
        (f"CPU per pair, {args.concurrency} concurrent", lambda f: f.pair_cpu, js.pairs, None),
    ):
        line(label, *each(lambda f, pick=pick, count=count: pick(f).user / count, ms), limit)
        line(
            "  the same, with wrangler's proxy workerd",
            *each(lambda f, pick=pick, count=count: pick(f).all_workerd / count, ms),
        )
    line(
        f"throughput, pairs/s at {args.concurrency} concurrent",
        *each(lambda f: f.pairs / f.pairs_seconds, lambda v: f"{v:.1f}"),
        0.5,
        at_least=True,
    )
    raw = {
        "js": js.recover["peer"],
        "py": figures["py"].recover["js"],
        "ethkeys": figures["ethkeys"].recover["eth-keys"],
    }
    line(
        "raw recovery in the runtime (CPU)",
        {k: ms(v) for k, v in raw.items()},
        {k: v / raw["js"] for k, v in raw.items()},
    )
    fast = figures["ethkeys"].recover["fast"]
    print(
        f"|   (this Worker: the JS bundle over the FFI; the probe: eth-keys; chain.secp256k1_fast, the fallback:"
        f" {ms(fast)}, {fast / raw['js']:.2f}x)"
    )
    line(f"/health p50 (n={len(js.health)})", *each(lambda f: p(f.health, 0.5), ms), 1.3)
    launch = {name: statistics.median(run.ready_after for run in cold[name]) for name, _ in WORKERS}
    first = {name: statistics.median(run.first_request for run in cold[name]) for name, _ in WORKERS}
    line(
        "launch → first answer (median)",
        {k: f"{v:.2f} s" for k, v in launch.items()},
        {k: v / launch["js"] for k, v in launch.items()},
    )
    line("first request after 'Ready on' (median)", {k: f"{v:.2f} s" for k, v in first.items()}, {})
    floor = figures["floor"]
    print(
        "|   Python floor (bench/peer_py: the SDK alone, the same D1 work as the JS peer), ratio to the JS Worker:"
        f" CPU per challenge {ms(floor.challenge_cpu.user / len(floor.challenge))}"
        f" ({floor.challenge_cpu.user / len(floor.challenge) / (js.challenge_cpu.user / len(js.challenge)):.2f}x),"
        f" CPU per /health {ms(floor.health_cpu.user / len(floor.health))}"
        f" ({floor.health_cpu.user / len(floor.health) / (js.health_cpu.user / len(js.health)):.2f}x),"
        f" /health p50 {ms(p(floor.health, 0.5))} ({p(floor.health, 0.5) / p(js.health, 0.5):.2f}x),"
        f" launch → first answer {statistics.median(run.ready_after for run in cold['floor']):.2f} s"
    )
    print()
    print("launch → first answer, each run: " + "; ".join(
        f"{name}: " + " ".join(f"{run.ready_after:.2f}" for run in runs) for name, runs in cold.items()))  # fmt: skip
    print("wrangler's node process per verify: " + ", ".join(
        f"{name} {ms(figures[name].verify_cpu.node / len(js.verify))}" for name, _ in WORKERS))  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds of every warm phase (default 3)")
    parser.add_argument("--health", type=int, default=60, help="GET /health per round and Worker (default 60)")
    parser.add_argument("--verify", type=int, default=30, help="challenges and verifies per round (default 30)")
    parser.add_argument("--pairs", type=int, default=120, help="concurrent pairs per round and Worker (default 120)")
    parser.add_argument("--concurrency", type=int, default=8, help="concurrent clients (default 8)")
    parser.add_argument("--recover", type=int, default=200, help="in-runtime recoveries per backend (default 200)")
    parser.add_argument("--cold-runs", type=int, default=1, help="extra fresh launches of each Worker (default 1)")
    args = parser.parse_args()
    if not (BUNDLE / "bundle.json").exists():
        print(f"error: {BUNDLE} is missing: run `make bundle` first", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    root = Path(tempfile.mkdtemp(prefix="bench-edge-peer-"))
    env_vars = {**BASE_VARS, **UVICORN_UNLIMITED}
    started = time.monotonic()
    running: list[EdgeWorker] = []
    cold: dict[str, list[EdgeWorker]] = {name: [] for name, _ in WORKERS}
    cold["floor"] = []
    figures = {name: Figures() for name, _ in WORKERS}
    figures["floor"] = Figures()
    ok = False
    try:
        seed = root / "seed-state"

        def launch(name: str, label: str) -> EdgeWorker:
            workdir = root / label
            worker: EdgeWorker
            if name == "js":
                worker = PeerWorker(workdir, env_vars)
            elif name == "floor":
                worker = PeerWorker(workdir, env_vars, FLOOR)
            elif name == "ethkeys":
                worker = probe_worker(workdir, env_vars, seed)
            else:
                worker = EdgeWorker(workdir, env_vars, rate_limits=WORKERD_UNLIMITED, seed_state=seed)
            worker.migrate()  # outside the timed launch
            running.append(worker)
            print(f"{label}: `wrangler dev` ...", flush=True)
            worker.start()
            cold[name].append(worker)
            return worker

        names = [name for name, _ in WORKERS]
        for extra in range(args.cold_runs):  # fresh launches, one Worker at a time, stopped at once
            for name in names[extra % 3 :] + names[: extra % 3] + ["floor"]:
                launch(name, f"cold-{name}-{extra}").stop()
        workers = {name: launch(name, f"warm-{name}") for name in [*names, "floor"]}
        meters = {name: Meter(worker) for name, worker in workers.items()}
        clients = {name: httpx.Client(base_url=worker.url, timeout=120) for name, worker in workers.items()}
        for name, http in clients.items():  # warm-up, untimed
            for _ in range(10):
                expect(http.get("/health"), 200)
            warm = argparse.Namespace(health=5, verify=5)
            sequential_round(http, meters[name], Figures(), warm, verify_too=name != "floor")
        for number in range(args.rounds):
            # Interleaved and rotated each round: drift in the machine's load reaches every Worker alike.
            order = names[number % 3 :] + names[: number % 3]
            for name in order:
                print(f"round {number + 1}/{args.rounds}: {name} sequential ...", flush=True)
                sequential_round(clients[name], meters[name], figures[name], args)
            print(f"round {number + 1}/{args.rounds}: the Python floor, health and challenge ...", flush=True)
            sequential_round(clients["floor"], meters["floor"], figures["floor"], args, verify_too=False)
            for name in order[::-1]:
                print(f"round {number + 1}/{args.rounds}: {name} {args.concurrency} concurrent ...", flush=True)
                asyncio.run(concurrent_pairs(workers[name].url, meters[name], figures[name], args))
        for http in clients.values():
            http.close()
        print("raw recovery in the runtime ...", flush=True)
        figures["js"].recover = in_runtime_recovery(workers["js"], ["peer"], args.recover)
        figures["ethkeys"].recover = in_runtime_recovery(workers["ethkeys"], ["js", "fast", "eth-keys"], args.recover)
        figures["py"].recover = {"js": figures["ethkeys"].recover["js"]}
        for worker in workers.values():
            worker.stop()
            if escaped := worker.tracebacks():
                raise RuntimeError("an exception escaped a Worker:\n" + "\n".join(escaped[:20]))
        ok = True
    finally:
        for worker in running:
            worker.stop()
        if ok:
            shutil.rmtree(root, ignore_errors=True)
        else:
            print(f"bench failed: logs kept in {root}", file=sys.stderr)
    report(figures, args, cold)
    print(f"total {time.monotonic() - started:.0f} s (a shared machine: figures are noisy, compare within one run)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
