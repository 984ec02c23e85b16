"""The timeout job: overlapping runs on one database do each expiry once; work is bounded per run."""

from __future__ import annotations

import asyncio
import sqlite3
from datetime import timedelta

from api.jobs import run_scheduled
from challenges import timeouts
from core.clock import format_time
from core.context import Services
from core.logging import Logger, MemoryLogSink
from local.server import open_database
from tests.conftest import MIGRATIONS


async def _seed_expiring(client, make_user, clock, count: int) -> list[str]:
    _, creator = await make_user()
    counterparty_id, _ = await make_user()
    ids = []
    for _ in range(count):
        body = {
            "mode": "FIRE",
            "title": "t",
            "counterparty_user_id": counterparty_id,
            "expires_at": format_time(clock.now() + timedelta(minutes=5)),
            "fire_config": {"honesty_bond_amount": "10", "currency_code": "USD", "resolution_strategy": "MODERATOR"},
        }
        challenge_id = (await client.post("/challenges", json=body, token=creator)).json()["id"]
        await client.post(f"/challenges/{challenge_id}/send", token=creator)
        await client.post(
            f"/challenges/{challenge_id}/stake",
            token=creator,
            json={"type": "HONESTY_BOND", "amount": "10", "currency_code": "USD"},
        )
        ids.append(challenge_id)
    return ids


async def test_two_runs_at_the_same_moment_expire_each_challenge_once(client, make_user, clock, services, db_path):
    ids = await _seed_expiring(client, make_user, clock, 12)
    clock.advance(minutes=6)
    # A second cron invocation: its own connection to the same database, started at the same moment.
    other = Services(env=services.env, db=open_database(db_path, MIGRATIONS), clock=clock,
                     logger=Logger(MemoryLogSink()))  # fmt: skip
    first, second = await asyncio.gather(run_scheduled(services), run_scheduled(other))
    moved = first.results["challenge_timeouts"]["moved"] + second.results["challenge_timeouts"]["moved"]
    assert moved == 12
    assert first.failures == second.failures == {}
    with sqlite3.connect(db_path) as connection:
        marks = ",".join("?" * len(ids))
        expired = connection.execute(
            f"SELECT COUNT(*) FROM events WHERE type = 'challenge.expired' AND challenge_id IN ({marks})", ids
        ).fetchone()[0]
        refunds = connection.execute(
            f"SELECT COUNT(*) FROM ledger_entries WHERE entry_type = 'REFUND' AND challenge_id IN ({marks})", ids
        ).fetchone()[0]
        history = connection.execute(
            f"SELECT COUNT(*) FROM challenge_status_history WHERE to_status = 'EXPIRED' AND challenge_id IN ({marks})",
            ids,
        ).fetchone()[0]
        statuses = {row[0] for row in connection.execute(f"SELECT status FROM challenges WHERE id IN ({marks})", ids)}
    assert (expired, refunds, history, statuses) == (12, 12, 12, {"EXPIRED"})


async def test_work_is_bounded_per_run_and_resumes_next_tick(client, make_user, clock, services, monkeypatch):
    monkeypatch.setattr(timeouts, "BATCH_LIMIT", 5)
    await _seed_expiring(client, make_user, clock, 12)
    clock.advance(minutes=6)
    counts = [(await run_scheduled(services)).results["challenge_timeouts"]["moved"] for _ in range(4)]
    assert counts == [5, 5, 2, 0]
