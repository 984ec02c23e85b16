"""Scheduled jobs run by the cron trigger (Workers), the dev server's minute loop and the CLI."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from challenges.oracle import resolve_due
from challenges.timeouts import expire_due
from core import idempotency
from core.context import Services
from gatekeeper import funds, wallet
from relay import jobs as relay_jobs

Job = Callable[[Services], Awaitable[dict[str, int]]]


@dataclass
class JobReport:
    """What one scheduled run did, per job; a failing job is reported, the others still run."""

    results: dict[str, dict[str, int]] = field(default_factory=dict)
    failures: dict[str, str] = field(default_factory=dict)


async def expire_wallet_challenges(services: Services) -> dict[str, int]:
    """Mark PENDING wallet challenges past their expiry as EXPIRED (bounded per run)."""
    return {"expired": await wallet.expire_due(services.db, services.clock.now())}


async def challenge_timeouts(services: Services) -> dict[str, int]:
    return await expire_due(services)


async def oracle_resolutions(services: Services) -> dict[str, int]:
    return await resolve_due(services)


async def relay_dispatch(services: Services) -> dict[str, int]:
    return await relay_jobs.run(services)


JOBS: dict[str, Job] = {
    "expire_wallet_challenges": expire_wallet_challenges,
    "challenge_timeouts": challenge_timeouts,
    "oracle_resolutions": oracle_resolutions,
    "relay_dispatch": relay_dispatch,
    "expire_idempotency_keys": idempotency.expire_keys,
    "rekey_legacy_commitments": funds.rekey_legacy_commitments,
}


async def run_scheduled(services: Services, cron: str = "*/1 * * * *") -> JobReport:
    report = JobReport()
    for name, job in JOBS.items():
        try:
            report.results[name] = await job(services)
        except Exception as error:
            report.failures[name] = type(error).__name__
            services.logger.error("job_failed", job=name, cron=cron, error_type=type(error).__name__)
    services.logger.info("scheduled_run", cron=cron, results=report.results, failures=sorted(report.failures))
    return report
