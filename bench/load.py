"""`make bench`: the mixed load against the local server as it runs in dev, then against a raw ASGI baseline.

Prints requests/s, p50, p99, error rate, the server's CPU time per request and peak RSS for each, and the ratio
between them. BENCH_DURATION (seconds, default 60) and BENCH_CONNECTIONS (default 100) tune the run.

`--baseline PATH` (a `git worktree` of an older commit) runs that checkout's server too, alternating with this
one for `--rounds` rounds, and prints the medians and this / baseline: on a shared 2-core machine req/s swing by
a third between runs, so only a comparison inside one run means anything.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "src"), str(ROOT)]

from bench.limits import UNLIMITED  # noqa: E402
from tests.support.server import LiveServer, free_port  # noqa: E402

ADMIN_TOKEN = "bench-admin-token"
DURATION = int(os.environ.get("BENCH_DURATION", "60"))
CONNECTIONS = int(os.environ.get("BENCH_CONNECTIONS", "100"))
WORKERS = os.environ.get("BENCH_WORKERS", "1")
TARGETS = {"rps": 1000, "p99_ms": 200, "error_rate": 0.001}
GOALS = {"rps": 2500, "p99_ms": 50, "ratio": 0.5, "rss_mib": 128}


def cpu_seconds(pid: int) -> float:
    """User + system CPU time the process has used so far (/proc/PID/stat, fields 14 and 15)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def peak_rss_mib(pid: int) -> float:
    """VmHWM of the process and its children (uvicorn may fork none; anvil is not started here)."""
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"VmHWM:\s+(\d+) kB", status).group(1)) / 1024


def run_wrk(url: str, script: Path | None, env: dict[str, str]) -> dict[str, float]:
    wrk = shutil.which("wrk")
    if wrk is None:
        sys.exit("wrk not found: `apt-get install wrk` (Debian) — make bench installs it")
    command = [wrk, "-t2", f"-c{CONNECTIONS}", f"-d{DURATION}s", "--latency", "--timeout", "5s"]
    if script is not None:
        command += ["-s", str(script)]
    output = subprocess.run(
        [*command, url], capture_output=True, text=True, env={**os.environ, **env}, check=True
    ).stdout

    def latency(label: str) -> float:
        value, unit = re.search(rf"{label}\s+([\d.]+)(us|ms|s)", output).groups()
        return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]

    total = int(re.search(r"(\d+) requests in", output).group(1))
    non_2xx = int(m.group(1)) if (m := re.search(r"Non-2xx or 3xx responses: (\d+)", output)) else 0
    socket_errors = sum(int(n) for n in re.findall(r"(?:connect|read|write|timeout) (\d+)", output))
    return {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1)),
        "p50_ms": latency("50%"),
        "p99_ms": latency("99%"),
        "error_rate": (non_2xx + socket_errors) / max(total, 1),
        "requests": total,
    }


def report(name: str, figures: dict[str, float], rss: float) -> None:
    cpu = f"   CPU {figures['cpu_us']:.0f} µs/request" if "cpu_us" in figures else ""
    print(
        f"{name:<9} {figures['rps']:>9.0f} req/s   p50 {figures['p50_ms']:>6.2f} ms   p99 {figures['p99_ms']:>6.2f} ms"
        f"   errors {figures['error_rate'] * 100:.3f} %{cpu}   peak RSS {rss:.1f} MiB   ({int(figures['requests'])} requests)"
    )


def bench_app(workdir: Path, project_root: Path = ROOT) -> tuple[dict[str, float], float]:
    env_vars = {
        "HMAC_SECRET": "bench-hmac-secret-0123456789abcdef0123",
        "ADMIN_TOKEN": ADMIN_TOKEN,
        "FF_GATEKEEPER_V2": "true",
        "FF_CHALLENGES": "true",
        **UNLIMITED,
    }
    server = LiveServer(
        workdir, env_vars, extra_args=["--no-chain", "--no-cron", "--workers", WORKERS], project_root=project_root
    ).start()
    try:
        with httpx.Client(base_url=server.url, timeout=10) as http:
            key = http.post("/admin/api-keys", json={}, headers={"authorization": f"Bearer {ADMIN_TOKEN}"}).json()
            auth = {"authorization": f"Bearer {key['api_key']}"}
            ids = [
                http.post("/challenges", json={"mode": "SOLO", "title": f"seed {n}"}, headers=auth).json()["id"]
                for n in range(50)
            ]
        assert server.process is not None
        cpu_before = cpu_seconds(server.process.pid)
        figures = run_wrk(
            server.url, ROOT / "bench" / "mixed.lua", {"BENCH_TOKEN": key["api_key"], "BENCH_CHALLENGE_ID": ids[0]}
        )
        # With --workers N the requests are served by children: the parent's own CPU says nothing then.
        if WORKERS == "1":
            figures["cpu_us"] = (cpu_seconds(server.process.pid) - cpu_before) / figures["requests"] * 1e6
        return figures, peak_rss_mib(server.process.pid)
    finally:
        server.stop()


def bench_raw(workdir: Path) -> tuple[dict[str, float], float]:
    port = free_port()
    environment = {**os.environ, "RAW_DB": str(workdir / "raw.sqlite"), "PYTHONPATH": str(ROOT / "bench")}
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "raw_app:app",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "warning",
            "--no-access-log",
        ],
        cwd=ROOT / "bench",
        env=environment,
    )
    try:
        for _ in range(100):
            try:
                httpx.get(f"http://127.0.0.1:{port}/", timeout=1)
                break
            except httpx.HTTPError:
                time.sleep(0.1)
        figures = run_wrk(f"http://127.0.0.1:{port}/", None, {})
        return figures, peak_rss_mib(process.pid)
    finally:
        process.terminate()
        process.wait(timeout=10)


def compare(baseline: Path, rounds: int) -> None:
    """This checkout's server against `baseline`'s, alternating, `rounds` times; medians and ratios."""
    runs: dict[str, list[dict[str, float]]] = {"baseline": [], "this": []}
    for number in range(1, rounds + 1):
        for name, root in (("baseline", baseline), ("this", ROOT)):
            with tempfile.TemporaryDirectory() as tmp:
                figures, rss = bench_app(Path(tmp), root)
            runs[name].append(figures)
            report(f"{name} {number}", figures, rss)
    medians = {
        name: {key: statistics.median(run[key] for run in results) for key in results[0]}
        for name, results in runs.items()
    }
    for name, figures in medians.items():
        cpu = f", CPU {figures['cpu_us']:.0f} µs/request" if "cpu_us" in figures else ""
        print(f"median {name}: {figures['rps']:.0f} req/s, p99 {figures['p99_ms']:.1f} ms{cpu}")
    ratios = {
        key: medians["this"][key] / medians["baseline"][key]
        for key in ("rps", "p99_ms", "cpu_us")
        if key in medians["this"]
    }
    print("this / baseline: " + ", ".join(f"{key} {value:.2f}" for key, value in ratios.items()))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", type=Path, help="another checkout (git worktree) to compare this one with")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds with --baseline")
    args = parser.parse_args()
    print(f"mixed load: {CONNECTIONS} connections, {DURATION} s each, wrk -t2, server: uvicorn ({WORKERS} process)")
    if args.baseline is not None:
        compare(args.baseline.resolve(), args.rounds)
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        app, app_rss = bench_app(Path(tmp))
        raw, raw_rss = bench_raw(Path(tmp))
    report("app", app, app_rss)
    report("raw", raw, raw_rss)
    ratio = app["rps"] / raw["rps"]
    print(f"ratio     app / raw = {ratio:.2f}")
    seed_ok = (
        app["rps"] > TARGETS["rps"] and app["p99_ms"] < TARGETS["p99_ms"] and app["error_rate"] < TARGETS["error_rate"]
    )
    print(f"seed targets (>1000 req/s, p99 < 200 ms, errors < 0.1 %): {'met' if seed_ok else 'NOT met'}")
    goals = {
        "req/s >= 2500": app["rps"] >= GOALS["rps"],
        "p99 <= 50 ms": app["p99_ms"] <= GOALS["p99_ms"],
        "ratio >= 0.5": ratio >= GOALS["ratio"],
        "peak RSS <= 128 MiB": app_rss <= GOALS["rss_mib"],
    }
    print("goals: " + ", ".join(f"{name} {'met' if ok else 'missed'}" for name, ok in goals.items()))
    return 0 if seed_ok else 1


if __name__ == "__main__":
    sys.exit(main())
