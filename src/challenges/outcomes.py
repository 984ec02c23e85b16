"""How a challenge ends or moves towards its end: proposals, party actions and the final attestation."""

from __future__ import annotations

from datetime import datetime, timedelta

from challenges import attestation, modes, stakes, store, transitions
from challenges.records import ChallengeRecord, StakeRecord
from challenges.store import Aggregate
from challenges.transitions import Change, event_payload, with_deadline
from core.clock import format_time
from core.context import Services
from core.ids import new_id
from db.port import Statement

OUTCOMES = ("CREATOR_WIN", "COUNTERPARTY_WIN", "DRAW", "NO_CONTEST")
DEFAULT_DISPUTE_TIMEOUT_SECONDS = 72 * 3600
OUTCOME_PROPOSED = "challenge.outcome_proposed"


def party_action_statement(
    services: Services, change: Change, user_id: str, action: str, payload: str | None, now: datetime
) -> Statement:
    """Record a party's latest `action` (COMPLETE, RESPOND, RESOLVE), only if the change wins."""
    return store.party_action_upsert(
        services.db, change.guard(), change.challenge.id, user_id, action, payload, format_time(now)
    )


def parties(challenge: ChallengeRecord) -> set[str]:
    return {party for party in (challenge.creator_user_id, challenge.counterparty_user_id) if party}


def other_party(challenge: ChallengeRecord, user_id: str | None) -> str | None:
    if user_id is None:
        return None
    if user_id == challenge.creator_user_id:
        return challenge.counterparty_user_id
    return challenge.creator_user_id


async def finish(
    services: Services, change: Change, held: list[StakeRecord], outcome: str | None, now: datetime
) -> Aggregate | None:
    """Complete with the FINAL attestation over I, C and the outcome, settling the `held` stakes."""
    challenge = change.challenge
    stamp = format_time(now)
    final = attestation.final_terms(challenge.id, challenge.initiator_hash, challenge.counter_hash, outcome, stamp)
    change.to_status = modes.COMPLETED
    change.set_columns |= {"completed_at": stamp, "outcome": outcome, "final_hash": attestation.digest(final)}
    change.events.append(
        (
            "challenge.completed",
            event_payload(challenge, modes.COMPLETED, outcome=outcome, final_hash=change.set_columns["final_hash"]),
            None,
        )
    )
    transitions.add_attestations(services.db, change, [("FINAL", final)], now)
    stakes.settle_into(services.db, change, held, outcome, now)
    return await transitions.apply(services.db, with_deadline(change, modes.COMPLETED), now)


def dispute_window_seconds(aggregate: Aggregate) -> int | None:
    """How long the other party has to dispute before the timeout job settles (ENFORCED); None: no timeout."""
    if aggregate.challenge.mode != modes.ENFORCED:
        return None
    config = aggregate.enforced_config
    return int(config.dispute_timeout_seconds) if config else DEFAULT_DISPUTE_TIMEOUT_SECONDS


def announce(change: Change, outcome: str, proposed_by: str | None, window_seconds: int | None, now: datetime) -> None:
    """Make `outcome` the standing proposal, announced in the same batch: `challenge.outcome_proposed` to the
    other party, a history entry, and (where a timeout settles it) a dispute window that starts right here.

    The event id is stored with the proposal, so the timeout job can tell an announced proposal from one
    that never was; an unannounced one never settles money.
    """
    challenge = change.challenge
    stamp = format_time(now)
    event_id = new_id()
    window_end = None
    if window_seconds is not None and challenge.status == modes.AWAITING_RESOLUTION:
        window_end = format_time(now + timedelta(seconds=window_seconds))
        change.set_columns["dispute_deadline"] = window_end
    change.set_columns |= {
        "proposed_outcome": outcome,
        "proposed_by": proposed_by,
        "proposed_at": stamp,
        "proposal_event_id": event_id,
    }
    change.record = True
    change.event_ids[OUTCOME_PROPOSED] = event_id
    payload = event_payload(
        challenge,
        change.to_status or challenge.status,
        outcome=outcome,
        proposed_by=proposed_by,
        proposed_at=stamp,
        dispute_window_ends_at=window_end,
    )
    change.events.append((OUTCOME_PROPOSED, payload, other_party(challenge, proposed_by)))
