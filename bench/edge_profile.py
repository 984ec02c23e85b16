"""Where a request's time goes inside Pyodide (issue 17): cProfile around the Worker's own fetch, in workerd."""

# Run: PYTHONPATH=src .venv/bin/python bench/edge_profile.py [--n 300] [--top 30] [--sort tottime] [ROUTE ...]
#
# A temporary copy of src/ gets one extra entry module: the shipped adapter (src/entry.py's Default), plus
# GET /__bench/profile?route=&n= that builds the route's request as a JS Request, sends it through Default.fetch n
# times under cProfile (after a warm-up) and answers pstats' table. Routes: health, challenge (POST wallet
# challenge), verify (a fresh challenge signed by a fixed key, then its verify; only the verify is profiled).
# The Worker runs under `wrangler dev` with local D1 as in bench/edge.py; every process it starts is stopped.

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "src"), str(ROOT)]

import httpx  # noqa: E402

from bench.edge import EdgeWorker  # noqa: E402
from bench.limits import UNLIMITED as UVICORN_UNLIMITED  # noqa: E402
from tests.conftest import BASE_VARS  # noqa: E402
from tests.conftest import UNLIMITED as WORKERD_UNLIMITED  # noqa: E402

PROFILE_ENTRY = '''"""Bench probe (bench/edge_profile.py): src/entry.py's Worker, and GET /__bench/profile?route=&n=."""

import cProfile
import io
import json
import pstats
from urllib.parse import parse_qs, urlsplit

import js
from pyodide.ffi import to_js

import entry

WALLET = "0x00000000000000000000000000000000000000aa"


def js_request(base, method, path, body=None):
    init = {"method": method, "headers": {"content-type": "application/json"}}
    if body is not None:
        init["body"] = json.dumps(body)
    return js.Request.new(base + path, to_js(init, dict_converter=js.Object.fromEntries))


class Default(entry.Default):
    async def fetch(self, request):
        url = urlsplit(str(request.js_object.url))
        if url.path != "/__bench/profile":
            return await super().fetch(request)
        query = {key: values[0] for key, values in parse_qs(url.query).items()}
        base = f"{url.scheme}://{url.netloc}"
        route, n = query["route"], int(query.get("n", "100"))
        sort = query.get("sort", "cumulative")

        def build():
            if route == "health":
                return js_request(base, "GET", "/health")
            body = {"wallet_address": WALLET, "chain_id": "eip155:1"}
            return js_request(base, "POST", "/gatekeeper/v2/wallet/challenge", body)

        for _ in range(20):
            await super().fetch(build())
        requests = [build() for _ in range(n)]
        profile = cProfile.Profile()
        profile.enable()
        for made in requests:
            await super().fetch(made)
        profile.disable()
        out = io.StringIO()
        pstats.Stats(profile, stream=out).sort_stats(sort).print_stats(int(query.get("top", "40")))
        return js.Response.new(out.getvalue(), js.Object.fromEntries([["status", 200]]))
'''


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("routes", nargs="*", default=["health", "challenge"])
    parser.add_argument("--n", type=int, default=300)
    parser.add_argument("--top", type=int, default=35)
    parser.add_argument("--sort", default="tottime")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="bench-edge-profile-"))
    source = root / "src-probe"
    shutil.copytree(ROOT / "src", source, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    (source / "bench_profile.py").write_text(PROFILE_ENTRY)
    env_vars = {**BASE_VARS, **UVICORN_UNLIMITED}
    worker = EdgeWorker(root / "worker", env_vars, rate_limits=WORKERD_UNLIMITED, main=source / "bench_profile.py")
    try:
        worker.migrate()
        worker.start()
        with httpx.Client(base_url=worker.url, timeout=600) as http:
            for route in args.routes:
                answer = http.get(
                    "/__bench/profile", params={"route": route, "n": args.n, "top": args.top, "sort": args.sort}
                )
                answer.raise_for_status()
                print(f"=== {route}: {args.n} requests through Default.fetch, inside workerd ===")
                print(answer.text)
        if escaped := worker.tracebacks():
            raise RuntimeError("an exception escaped the Worker:\n" + "\n".join(escaped[:20]))
    finally:
        worker.stop()
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
