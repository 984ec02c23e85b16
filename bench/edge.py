"""Edge bench: the Worker in workerd (`wrangler dev`) vs the uvicorn dev server, warm latency and cold start."""

# Run: PYTHONPATH=src .venv/bin/python bench/edge.py [--health 200] [--verify 40] [--solo 40] [--cold-runs 3]
#
# Part 1 starts the Worker as deployed (src/entry.py + python_modules/) under `wrangler dev`, then the uvicorn dev
# server (same CLI as `make dev`), one after the other on 127.0.0.1, and times the same sequential requests on
# each: GET /health, wallet verify (challenge and signing untimed) and SOLO challenge creation.
# Part 2 compares cold starts of src/entry.py as shipped (APP built at import) with temporary copies of src/ whose
# entry.py builds APP on the first request ("lazy-build"), or also imports the route table then ("lazy-import").
# Every server it starts is stopped in a finally; the temporary folder is removed unless the run failed.

from __future__ import annotations

import argparse
import json
import re
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "src"), str(ROOT)]

import httpx  # noqa: E402
from eth_account import Account  # noqa: E402
from eth_account.messages import encode_defunct  # noqa: E402

from bench.limits import UNLIMITED as UVICORN_UNLIMITED  # noqa: E402
from tests.conftest import ADMIN_TOKEN, BASE_VARS  # noqa: E402
from tests.conftest import UNLIMITED as WORKERD_UNLIMITED  # noqa: E402
from tests.support.server import LiveServer  # noqa: E402
from tests.support.workerd import BUNDLE, REAL_WORKERD, WorkerdServer  # noqa: E402

CHALLENGE = "/gatekeeper/v2/wallet/challenge"
VERIFY = "/gatekeeper/v2/wallet/verify"
ENTRY_BUILD = "APP: App = build_app()\n"
ENTRY_IMPORT = "from api.routes import build_app\n"
ENTRY_USE = "await APP.handle("
# Cold-start variants of the Worker's entry module: None is src/entry.py itself.
VARIANTS: dict[str, str | None] = {"import": None, "lazy-build": "build", "lazy-import": "import"}
READY = "Ready on http"
RUNTIME_FAILED = "The Workers runtime failed to start"

Server = WorkerdServer | LiveServer


class EdgeWorker(WorkerdServer):
    """WorkerdServer that can run another entry module, reuses one migrated D1 state, and times its first request."""

    def __init__(
        self,
        workdir: Path,
        env_vars: dict[str, str],
        *,
        rate_limits: dict[str, int],
        main: Path | None = None,
        seed_state: Path | None = None,
    ) -> None:
        super().__init__(workdir, env_vars, rate_limits=rate_limits)
        if main is not None:
            self.config["main"] = str(main)
            self.config_path.write_text(json.dumps(self.config, indent=2))
        self.seed_state = seed_state
        self.ready_line_after = 0.0  # launch → wrangler's "Ready on" line
        self.first_request = 0.0  # the first GET /health after that line, alone

    def migrate(self) -> None:
        """Migrate once, then give every later worker a copy of that state (not in any timed window)."""
        if self.seed_state is not None and self.seed_state.exists():
            shutil.copytree(self.seed_state, self.state)
            return
        super().migrate()
        if self.seed_state is not None:
            shutil.copytree(self.state, self.seed_state)

    def start(self, timeout: float = 180.0, *, expect_status: int = 200) -> EdgeWorker:
        """As WorkerdServer.start, but sends nothing until wrangler prints "Ready on", then times GET /health."""
        with httpx.Client(base_url=self.url, timeout=120) as http:
            self.launch()
            assert self.process is not None
            deadline = self.launched_at + timeout
            while True:
                logs = self.logs()
                if READY in logs:
                    self.ready_line_after = time.monotonic() - self.launched_at
                    break
                if self.process.poll() is not None or RUNTIME_FAILED in logs:
                    raise RuntimeError(f"wrangler dev failed to start:\n{logs[-4000:]}")
                if time.monotonic() > deadline:
                    raise RuntimeError(f"no 'Ready on' line in {timeout:.0f} s:\n{logs[-4000:]}")
                time.sleep(0.02)
            started = time.monotonic()
            response = http.get("/health")
            self.first_request = time.monotonic() - started
        if response.status_code != expect_status:
            raise RuntimeError(f"first GET /health answered {response.status_code}:\n{self.logs()[-4000:]}")
        self.ready_after = time.monotonic() - self.launched_at
        return self


def lazy_entry(source: str, mode: str) -> str:
    """src/entry.py with APP built on the first request; mode "import" also defers importing the route table."""
    for snippet in (ENTRY_BUILD, ENTRY_IMPORT, ENTRY_USE):
        if snippet not in source:
            raise SystemExit(f"src/entry.py no longer contains {snippet!r}: update bench/edge.py's lazy variants")
    body = "    if APP is None:\n"
    if mode == "import":
        source = source.replace(ENTRY_IMPORT, "")
        body += "        from api.routes import build_app\n\n"
    body += "        APP = build_app()\n    return APP\n"
    getter = f"APP: App | None = None\n\n\ndef current_app() -> App:\n    global APP\n{body}"
    return source.replace(ENTRY_BUILD, getter).replace(ENTRY_USE, "await current_app().handle(")


def variant_main(root: Path, name: str, mode: str | None) -> Path | None:
    if mode is None:
        return None
    copy = root / f"src-{name}"
    shutil.copytree(ROOT / "src", copy, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    entry = copy / "entry.py"
    entry.write_text(lazy_entry(entry.read_text(), mode))
    return entry


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def timed(call: Callable[[], httpx.Response], expect: int, what: str) -> float:
    started = time.perf_counter()
    response = call()
    elapsed = time.perf_counter() - started
    if response.status_code != expect:
        raise RuntimeError(f"{what}: {response.status_code} (expected {expect}): {response.text[:500]}")
    return elapsed


def signed_challenge(http: httpx.Client) -> dict[str, str]:
    """A fresh wallet's challenge, signed as a wallet's personal_sign does it (untimed)."""
    key = secrets.token_bytes(32)
    answer = http.post(CHALLENGE, json={"wallet_address": Account.from_key(key).address, "chain_id": "eip155:1"})
    if answer.status_code != 201:
        raise RuntimeError(f"POST {CHALLENGE}: {answer.status_code}: {answer.text[:500]}")
    challenge = answer.json()
    signature = Account.sign_message(encode_defunct(text=challenge["message"]), private_key=key).signature.hex()
    return {"challenge_id": challenge["challenge_id"], "signature": "0x" + signature.removeprefix("0x")}


def warm_figures(url: str, health: int, verifies: int, solos: int) -> dict[str, list[float]]:
    """Sequential keep-alive requests after a warm-up; seconds per request for each endpoint."""
    with httpx.Client(base_url=url, timeout=60) as http:
        admin = {"authorization": f"Bearer {ADMIN_TOKEN}"}
        answer = http.post("/admin/api-keys", json={}, headers=admin)
        if answer.status_code != 201:
            raise RuntimeError(f"POST /admin/api-keys: {answer.status_code}: {answer.text[:500]}")
        user = {"authorization": f"Bearer {answer.json()['api_key']}"}
        solo = {"mode": "SOLO", "title": "Run a marathon", "description": "42 km"}

        def health_call() -> httpx.Response:
            return http.get("/health")

        def verify_call() -> float:
            body = signed_challenge(http)
            return timed(lambda: http.post(VERIFY, json=body), 200, f"POST {VERIFY}")

        def solo_call() -> httpx.Response:
            return http.post("/challenges", json=solo, headers=user)

        for _ in range(20):
            timed(health_call, 200, "GET /health")
        for _ in range(5):
            verify_call()
            timed(solo_call, 201, "POST /challenges")
        return {
            "health": [timed(health_call, 200, "GET /health") for _ in range(health)],
            "verify": [verify_call() for _ in range(verifies)],
            "solo": [timed(solo_call, 201, "POST /challenges") for _ in range(solos)],
        }


def snapshot_support() -> list[str]:
    """What this workerd and wrangler offer for Python memory snapshots (offline: --help and a text search)."""
    help_text = subprocess.run(
        [str(REAL_WORKERD), "serve", "--help"], capture_output=True, text=True, timeout=30, check=False
    )
    flags = sorted(set(re.findall(r"--python-[a-z-]+", help_text.stdout + help_text.stderr)))
    passed = []
    for dist in (ROOT / "node_modules" / "miniflare" / "dist", ROOT / "node_modules" / "wrangler" / "wrangler-dist"):
        for script in dist.rglob("*.js"):
            text = script.read_text(errors="replace")
            passed += [flag for flag in flags if flag in text]
    return [
        f"workerd serve flags: {', '.join(flags) or 'none'}",
        "wrangler dev / miniflare pass: "
        + (", ".join(sorted(set(passed))) or "none of them (only via a MINIFLARE_WORKERD_PATH wrapper)"),
    ]


def ms(seconds: float) -> str:
    return f"{seconds * 1000:7.1f} ms"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--health", type=int, default=200, help="timed GET /health per server (default 200)")
    parser.add_argument("--verify", type=int, default=40, help="timed wallet verifies per server (default 40)")
    parser.add_argument("--solo", type=int, default=40, help="timed SOLO creations per server (default 40)")
    parser.add_argument("--cold-runs", type=int, default=3, help="fresh `wrangler dev` per cold variant (0: skip)")
    args = parser.parse_args()
    if not (BUNDLE / "bundle.json").exists():
        print(
            f"error: {BUNDLE} is missing: run `make bundle` first (the Worker needs its vendored packages)",
            file=sys.stderr,
        )
        return 2
    # A SIGTERM still runs the finally blocks below, so no wrangler/workerd/uvicorn outlives the bench.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    root = Path(tempfile.mkdtemp(prefix="bench-edge-"))
    seed = root / "seed-state"
    env_vars = {**BASE_VARS, **UVICORN_UNLIMITED}
    started = time.monotonic()
    running: list[Server] = []
    ok = False
    try:
        worker = EdgeWorker(root / "warm-workerd", env_vars, rate_limits=WORKERD_UNLIMITED, seed_state=seed)
        running.append(worker)
        print("workerd: starting `wrangler dev` ...", flush=True)
        worker.start()
        print("workerd: timing warm requests ...", flush=True)
        warm: dict[str, dict[str, list[float]]] = {}
        warm["workerd"] = warm_figures(worker.url, args.health, args.verify, args.solo)
        worker.stop()
        if escaped := worker.tracebacks():
            raise RuntimeError("Python exception in workerd:\n" + "\n".join(escaped[:20]))
        (root / "uvicorn").mkdir()
        server = LiveServer(root / "uvicorn", env_vars)
        running.append(server)
        print("uvicorn: starting and timing warm requests ...", flush=True)
        server.start()
        warm["uvicorn"] = warm_figures(server.url, args.health, args.verify, args.solo)
        server.stop()

        cold: dict[str, list[EdgeWorker]] = {name: [] for name in VARIANTS}
        mains = {name: variant_main(root, name, mode) for name, mode in VARIANTS.items()}
        names = list(VARIANTS)
        for run in range(args.cold_runs):
            # Interleaved, and rotated each round: drift in the machine's load and position hit every variant alike.
            for name in names[run % len(names) :] + names[: run % len(names)]:
                print(f"cold start: {name} run {run + 1}/{args.cold_runs} ...", flush=True)
                cold_worker = EdgeWorker(
                    root / f"cold-{name}-{run}",
                    env_vars,
                    rate_limits=WORKERD_UNLIMITED,
                    main=mains[name],
                    seed_state=seed,
                )
                running.append(cold_worker)
                cold_worker.start()
                cold_worker.stop()
                if escaped := cold_worker.tracebacks():
                    raise RuntimeError(f"Python exception in workerd ({name}):\n" + "\n".join(escaped[:20]))
                cold[name].append(cold_worker)
        ok = True
    finally:
        for process in running:
            process.stop()
        if ok:
            shutil.rmtree(root, ignore_errors=True)
        else:
            print(f"bench failed: logs kept in {root}", file=sys.stderr)

    print()
    print("workerd (`wrangler dev`, src/entry.py as shipped)")
    print(f"  launch → 'Ready on' line     {worker.ready_line_after:7.2f} s")
    print(f"  first request (GET /health)  {worker.first_request:7.2f} s")
    print(f"  launch → first answer        {worker.ready_after:7.2f} s")
    print()
    labels = {"health": "GET /health", "verify": "wallet verify", "solo": "SOLO create"}
    counts = {"health": args.health, "verify": args.verify, "solo": args.solo}
    print(f"warm, sequential, keep-alive       {'workerd':>10} {'uvicorn':>10}   workerd/uvicorn")
    for key, label in labels.items():
        for name, fraction in (("p50", 0.5), ("p95", 0.95)):
            edge = percentile(warm["workerd"][key], fraction)
            local = percentile(warm["uvicorn"][key], fraction)
            title = f"{label} {name} (n={counts[key]})"
            print(f"  {title:<32} {ms(edge)} {ms(local)}   {edge / local:6.2f}x")
    if args.cold_runs:
        print()
        print(f"cold start, median of {args.cold_runs} fresh `wrangler dev` each")
        print(f"  {'entry module':<14}{'launch → Ready':>16}{'first request':>16}{'launch → answer':>18}   (runs)")
        for name, runs in cold.items():
            columns = [
                [run.ready_line_after for run in runs],
                [run.first_request for run in runs],
                [run.ready_after for run in runs],
            ]
            medians = "".join(
                f"{statistics.median(values):{width}.2f} s" for values, width in zip(columns, (14, 14, 16), strict=True)
            )
            runs_text = " | ".join(" ".join(f"{value:.2f}" for value in values) for values in columns)
            print(f"  {name:<14}{medians}   ({runs_text})")
    print()
    for line in snapshot_support():
        print(line)
    print(f"total {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
