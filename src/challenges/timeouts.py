"""The timeout job: moves challenges whose deadline passed (SPEC §9); idempotent and safe to run concurrently."""

from __future__ import annotations

from typing import Any

from challenges import lifecycle, modes, stakes, transitions
from challenges.transitions import Change
from core.clock import format_time
from core.context import Services
from core.errors import ApiError

# Bounded work per tick: about 20 statements a challenge keeps a run far inside D1's 1,000 queries per
# invocation, beside the other jobs; the rest waits for the next tick.
BATCH_LIMIT = 25
SYSTEM_ACTOR = "system:timeout"


def _rule(challenge: dict[str, Any]) -> tuple[str, str] | None:
    """(target status, reason) for a challenge whose watched deadline has passed."""
    status, mode = challenge["status"], challenge["mode"]
    if status == modes.AWAITING_COUNTERPARTY:
        return modes.EXPIRED, "accept deadline passed"
    if status == modes.AWAITING_GATEKEEPER:
        return modes.EXPIRED, "gatekeeper verification timed out"
    if status == modes.ACTIVE:
        return modes.EXPIRED, "response deadline passed"
    if status == modes.AWAITING_RESOLUTION:
        if mode == modes.SOLO:
            return modes.EXPIRED, "resolution due date passed"
        return modes.COMPLETED, "dispute window closed"
    return None


async def expire_due(services: Services) -> dict[str, int]:
    now = services.now()
    rows = (
        await services.db.prepare(
            "SELECT * FROM challenges WHERE next_deadline_at IS NOT NULL AND next_deadline_at <= ?"
            " AND status NOT IN ('COMPLETED', 'CANCELLED', 'EXPIRED') ORDER BY next_deadline_at LIMIT ?"
        )
        .bind(format_time(now), BATCH_LIMIT)
        .all()
    )
    moved = skipped = 0
    for challenge in rows.results:
        rule = _rule(challenge)
        if rule is None:
            continue
        target, reason = rule
        try:
            if target == modes.COMPLETED:
                change = Change(challenge, SYSTEM_ACTOR, reason)
                # Nobody disputed in time: the proposed outcome stands; with no proposal, nobody wins.
                await lifecycle.finish(services, change, challenge["proposed_outcome"] or "NO_CONTEST", now)
            else:
                payload = lifecycle.event_payload(challenge, target, reason=reason)
                change = Change(challenge, SYSTEM_ACTOR, reason, target, events=[("challenge.expired", payload, None)])
                await stakes.refund_into(services.db, change, now)
                await transitions.apply(services.db, lifecycle.with_deadline(change, target), now)
        except ApiError as error:
            if error.code != "E3014":
                raise
            skipped += 1  # another run (or a user) moved it first: nothing to do
            continue
        moved += 1
    return {"moved": moved, "skipped": skipped, "scanned": len(rows.results)}
