"""The timeout job: moves challenges whose deadline passed (SPEC §9); idempotent and safe to run concurrently."""

from __future__ import annotations

from datetime import datetime, timedelta

from challenges import modes, outcomes, stakes, store, transitions
from challenges.records import ChallengeRecord
from challenges.store import Aggregate
from challenges.transitions import Change, event_payload, with_deadline
from core.clock import format_time, parse_time
from core.context import Services
from core.errors import ApiError

# Bounded work per tick: about 20 statements a challenge keeps a run far inside D1's 1,000 queries per
# invocation, beside the other jobs; the rest waits for the next tick.
BATCH_LIMIT = 25
SYSTEM_ACTOR = "system:timeout"


def _rule(challenge: ChallengeRecord) -> tuple[str, str] | None:
    """(target status, reason) for a challenge whose watched deadline has passed."""
    status, mode = challenge.status, challenge.mode
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


def _window_seconds(aggregate: Aggregate) -> int:
    """The dispute window a proposal opens: the ENFORCED config's, else the default."""
    config = aggregate.enforced_config
    return int(config.dispute_timeout_seconds) if config is not None else outcomes.DEFAULT_DISPUTE_TIMEOUT_SECONDS


async def _close_dispute_window(services: Services, aggregate: Aggregate, reason: str, now: datetime) -> bool:
    """Settle per the proposal whose window passed; True if settled, False if the window was (re)started.

    The challenge is the row as scanned (its version guards the change), with its stakes and proposals.
    """
    challenge = aggregate.challenge
    outcome = challenge.proposed_outcome
    if outcome is None:
        # Nobody proposed anything: nobody wins, every stake is refunded.
        change = Change(challenge, SYSTEM_ACTOR, reason)
        await outcomes.finish(services, change, aggregate.held_stakes, "NO_CONTEST", now)
        return True
    announced_at = aggregate.proposal_announced_at
    if announced_at is None:
        # A proposal the other party was never told about (stored before announcements existed):
        # announce it now, and its window starts now.
        proposals = aggregate.actions("RESOLVE")
        proposers = [user for user, proposed in proposals.items() if proposed == outcome]
        proposed_by = proposers[0] if len(proposers) == 1 else None
        change = Change(challenge, SYSTEM_ACTOR, f"outcome proposed: {outcome} (announced late)")
        outcomes.announce(change, outcome, proposed_by, _window_seconds(aggregate), now)
        await transitions.apply(services.db, with_deadline(change, challenge.status), now)
        return False
    window_end = parse_time(announced_at) + timedelta(seconds=_window_seconds(aggregate))
    if now < window_end:
        # The stored deadline is earlier than the announcement allows: the loser keeps the whole window.
        change = Change(
            challenge, SYSTEM_ACTOR, "dispute window runs from the announcement",
            set_columns={"dispute_deadline": format_time(window_end)},
        )  # fmt: skip
        await transitions.apply(services.db, with_deadline(change, challenge.status), now)
        return False
    await outcomes.finish(services, Change(challenge, SYSTEM_ACTOR, reason), aggregate.held_stakes, outcome, now)
    return True


async def expire_due(services: Services) -> dict[str, int]:
    now = services.now()
    due = await store.timeouts_due(services.db, format_time(now), BATCH_LIMIT)
    moved = skipped = deferred = 0
    for aggregate in due:
        challenge = aggregate.challenge
        rule = _rule(challenge)
        if rule is None:
            continue
        target, reason = rule
        try:
            if target == modes.COMPLETED:
                if not await _close_dispute_window(services, aggregate, reason, now):
                    deferred += 1
                    continue
            else:
                payload = event_payload(challenge, target, reason=reason)
                change = Change(challenge, SYSTEM_ACTOR, reason, target, events=[("challenge.expired", payload, None)])
                stakes.refund_into(services.db, change, aggregate.held_stakes, now)
                await transitions.apply(services.db, with_deadline(change, target), now)
        except ApiError as error:
            if error.code != "E3014":
                raise
            skipped += 1  # another run (or a user) moved it first: nothing to do
            continue
        moved += 1
    return {"moved": moved, "skipped": skipped, "deferred": deferred, "scanned": len(due)}
