"""Command line for local work: migrate, create-key, dev (serve), cron (run jobs once)."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
from collections.abc import Sequence
from typing import Any

from local import config as local_config


def cmd_migrate(args: argparse.Namespace) -> int:
    from db import migrations
    from local.server import open_database

    cfg = local_config.load()
    database = open_database(cfg.database_path, cfg.migrations_dir)
    remaining = migrations.pending(database, cfg.migrations_dir)
    print(json.dumps({"database": str(cfg.database_path), "pending": [m.name for m in remaining]}))
    return 0


def cmd_create_key(args: argparse.Namespace) -> int:
    from accounts.users import issue_api_key
    from core.clock import SystemClock
    from local.server import open_database

    cfg = local_config.load()
    database = open_database(cfg.database_path, cfg.migrations_dir)
    issued = asyncio.run(issue_api_key(database, SystemClock().now(), email=args.email, display_name=args.display_name))
    print(json.dumps({"user_id": issued.user_id, "api_key": issued.api_key}))
    return 0


def cmd_cron(args: argparse.Namespace) -> int:
    from api.jobs import run_scheduled
    from core.logging import Logger
    from local.server import build_services

    # stdout carries the command's JSON result; log lines go to stderr.
    services = build_services(local_config.load(), logger=Logger(lambda line: print(line, file=sys.stderr)))
    report = asyncio.run(run_scheduled(services, args.cron))
    print(json.dumps({"results": report.results, "failures": report.failures}))
    return 1 if report.failures else 0


def _exit_on_signal(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


WORKER_VARS_ENV = "TATTLEHASH_WORKER_VARS"


def worker_app() -> object:
    """App factory for `dev --workers N`: one app per worker process, configured like the parent's."""
    from local.server import build_asgi, build_services

    extra = json.loads(os.environ.get(WORKER_VARS_ENV, "{}"))
    cron = extra.pop("__cron__", "on") == "on"
    services = build_services(local_config.load(), extra_vars=extra)
    return build_asgi(services, cron_interval=60.0 if cron else None, dev_clock=False)


def uvicorn_options(host: str, port: int) -> dict[str, Any]:
    """How `dev` runs uvicorn.

    proxy_headers off: uvicorn would otherwise take the client IP from X-Forwarded-For when the peer is
    127.0.0.1 (i.e. any local caller), handing every request its own rate-limit bucket. The client IP is the
    socket peer; no forwarding header is trusted locally.

    loop "asyncio", not uvloop: on a saturated loop uvloop took 0.7-0.9 s to accept 50 new connections that
    arrived together (one every loop iteration), so their first requests waited that long and `make bench`'s
    p99 measured the accept queue; asyncio accepts every pending connection at once, and the app, not the loop,
    is what costs CPU here (req/s measured the same).
    """
    return {
        "host": host,
        "port": port,
        "log_level": "warning",
        "access_log": False,
        "lifespan": "on",
        "proxy_headers": False,
        "loop": "asyncio",
    }


def cmd_dev(args: argparse.Namespace) -> int:
    import uvicorn

    from local.anvil import AnvilError, AnvilNode
    from local.server import build_asgi, build_services

    cfg = local_config.load()
    extra: dict[str, str] = {}
    chain: AnvilNode | None = None
    if not args.no_chain and not cfg.vars.get("RPC_URL_LOCAL"):
        try:
            chain = AnvilNode(port=args.chain_port).start()
        except AnvilError as error:
            print(f"local chain not started ({error}): network 'local' disabled", file=sys.stderr)
        else:
            extra["RPC_URL_LOCAL"] = chain.url
            print(f"local chain (anvil) on {chain.url}, network 'local' (eip155:31337)", file=sys.stderr)
    # uvicorn re-raises SIGTERM/SIGINT after its graceful shutdown; turning that into SystemExit lets the
    # `finally` below stop the chain instead of the process dying with anvil left behind.
    signal.signal(signal.SIGTERM, _exit_on_signal)
    options = uvicorn_options(args.host, args.port)
    try:
        if args.workers > 1:
            # Each worker process builds its own app from the same configuration (like Worker isolates).
            os.environ[WORKER_VARS_ENV] = json.dumps({**extra, "__cron__": "off" if args.no_cron else "on"})
            uvicorn.run("local.cli:worker_app", factory=True, workers=args.workers, **options)
        else:
            services = build_services(cfg, extra_vars=extra)
            app = build_asgi(services, cron_interval=None if args.no_cron else 60.0)
            uvicorn.run(app, **options)
    except KeyboardInterrupt:
        pass
    finally:
        if chain is not None:
            chain.stop()
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from local import demo

    cfg = local_config.load()
    admin_token = cfg.vars.get("ADMIN_TOKEN", "")
    if not admin_token:
        print("ADMIN_TOKEN is not set: copy .dev.vars.example to .dev.vars", file=sys.stderr)
        return 2
    return demo.main(args.server, args.chain, admin_token)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tattlehash", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("migrate", help="apply db/migrations to the local D1 file").set_defaults(run=cmd_migrate)
    key = commands.add_parser("create-key", help="create a user and an API key")
    key.add_argument("--email")
    key.add_argument("--display-name")
    key.set_defaults(run=cmd_create_key)
    cron = commands.add_parser("cron", help="run the scheduled jobs once")
    cron.add_argument("--cron", default="*/1 * * * *")
    cron.set_defaults(run=cmd_cron)
    dev = commands.add_parser("dev", help="serve on 127.0.0.1:8787 like `wrangler dev`")
    dev.add_argument("--host", default="127.0.0.1")
    dev.add_argument("--port", type=int, default=8787)
    dev.add_argument("--no-chain", action="store_true", help="don't start a local anvil chain")
    dev.add_argument("--chain-port", type=int, default=8545)
    dev.add_argument("--no-cron", action="store_true")
    dev.add_argument("--workers", type=int, default=1, help="worker processes (default 1)")
    dev.set_defaults(run=cmd_dev)
    demo = commands.add_parser("demo", help="walk the full GATEKEEPER flow against a running dev server")
    demo.add_argument("--server", default="http://127.0.0.1:8787")
    demo.add_argument("--chain", default="http://127.0.0.1:8545")
    demo.set_defaults(run=cmd_demo)
    args = parser.parse_args(argv)
    return int(args.run(args))


if __name__ == "__main__":
    sys.exit(main())
