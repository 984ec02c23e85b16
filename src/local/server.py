"""Builds the local runtime: SQLite database (migrated), services from config, and the ASGI app."""

from __future__ import annotations

from pathlib import Path

from api.routes import build_app
from chain.blockcache import BlockCache
from core.clock import Clock, OffsetClock, SystemClock
from core.config import Env
from core.context import Services
from core.logging import Logger
from core.ratelimit import SlidingWindowLimiter
from db import migrations
from db.sqlite import SqliteDatabase
from local import devclock, faults
from local.asgi import AsgiAdapter
from local.config import LocalConfig
from local.faults import CrashingDatabase, CrashPoint


def open_database(path: Path, migrations_dir: Path, *, latency_seconds: float = 0.0) -> SqliteDatabase:
    path.parent.mkdir(parents=True, exist_ok=True)
    database = SqliteDatabase(path, latency_seconds=latency_seconds)
    migrations.apply(database, migrations_dir)
    return database


def build_services(
    config: LocalConfig,
    *,
    clock: Clock | None = None,
    logger: Logger | None = None,
    extra_vars: dict[str, str] | None = None,
) -> Services:
    env = Env({**config.vars, **(extra_vars or {})})
    if clock is None:
        offset = devclock.initial_offset(env)
        clock = SystemClock() if offset is None else OffsetClock(SystemClock(), offset)
    latency = env.int("LOCAL_D1_LATENCY_MS", 0) / 1000
    database = open_database(config.database_path, config.migrations_dir, latency_seconds=latency)
    crash = CrashPoint.parse(env.get(faults.VARIABLE))
    return Services(
        env=env,
        db=CrashingDatabase(database, crash) if crash is not None else database,
        clock=clock,
        logger=logger or Logger(),
        rate_limiter=SlidingWindowLimiter(),
        block_cache=BlockCache(),
    )


def build_asgi(services: Services, *, cron_interval: float | None = None, dev_clock: bool = True) -> AsgiAdapter:
    """The local app; /dev/clock is served when the services run on a dev clock (DEV_CLOCK_OFFSET_SECONDS) and
    `dev_clock` is on (off for `dev --workers N`: each process would keep a clock of its own)."""
    clock = services.clock if dev_clock and isinstance(services.clock, OffsetClock) else None
    return AsgiAdapter(build_app(), services, cron_interval=cron_interval, dev_clock=clock)
