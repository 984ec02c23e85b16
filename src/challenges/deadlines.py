"""Which deadline can move a challenge next, per status: kept in next_deadline_at for the timeout job."""

from __future__ import annotations

from challenges import modes
from challenges.records import ChallengeRecord


def next_deadline(status: str, challenge: ChallengeRecord) -> str | None:
    """The one deadline the timeout job must watch when `challenge` is in `status`, or None."""
    if status == modes.AWAITING_COUNTERPARTY:
        return challenge.accept_deadline
    if status == modes.AWAITING_GATEKEEPER:
        return challenge.verification_deadline
    if status == modes.ACTIVE:
        return challenge.response_deadline
    if status == modes.AWAITING_RESOLUTION:
        if challenge.mode == modes.SOLO:
            return challenge.resolution_due_at
        return challenge.dispute_deadline
    return None
