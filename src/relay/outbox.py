"""The transactional outbox: an event row is a statement added to the same batch as the change it reports."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from core.clock import format_time
from core.ids import new_id
from db.port import Database, Statement
from relay import store

EVENT_TYPES = (
    "challenge.created",
    "challenge.invitation_sent",
    "challenge.accepted",
    "challenge.gatekeeper_verification_required",
    "challenge.intent_locked",
    "challenge.verification_failed",
    "challenge.activated",
    "challenge.response_submitted",
    "challenge.disputed",
    "challenge.completed",
    "challenge.cancelled",
    "challenge.expired",
    "challenge.outcome_proposed",
    "stake.held",
    "stake.released",
    "stake.slashed",
    "stake.refunded",
    "wallet.verified",
)


def event_statement(
    db: Database,
    event_type: str,
    payload: dict[str, Any],
    now: datetime,
    *,
    challenge_id: str | None = None,
    user_id: str | None = None,
    guard_sql: str | None = None,
    guard_params: tuple[Any, ...] = (),
    event_id: str | None = None,
) -> Statement:
    """An INSERT of one event; with a guard it inserts only if the guard query finds a row.

    The guard lets an event ride in the same batch as a conditional update: when the update lost
    its race (0 rows changed), the guard finds nothing and no event is written either.
    `event_id` is for a row that must point at this event (e.g. a proposal at its announcement).
    """
    if event_type not in EVENT_TYPES:
        raise ValueError(f"unknown event type {event_type}")
    return store.insert_event_statement(
        db,
        event_id or new_id(),
        event_type,
        json.dumps(payload, separators=(",", ":")),
        format_time(now),
        challenge_id=challenge_id,
        user_id=user_id,
        guard_sql=guard_sql,
        guard_params=guard_params,
    )
