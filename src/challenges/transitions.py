"""Atomic state changes: one D1 batch = conditional update on (status, version) + history + events + extras."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from challenges import modes
from core.clock import format_time
from core.errors import ApiError
from core.ids import new_id
from db.port import Database, Statement
from relay.outbox import event_statement

# Columns a transition may set besides status/version/updated_at; names never come from input.
UPDATABLE_COLUMNS = frozenset(
    {
        "counterparty_user_id",
        "accepted_at",
        "accept_deadline",
        "verification_deadline",
        "response_deadline",
        "dispute_deadline",
        "next_deadline_at",
        "intent_locked_at",
        "completed_at",
        "outcome",
        "proposed_outcome",
        "proposed_by",
        "proposed_at",
        "proposal_event_id",
        "resolution_data",
        "initiator_hash",
        "counter_hash",
        "final_hash",
    }
)
_GUARD = "SELECT 1 FROM challenges WHERE id = ? AND last_change_id = ?"


@dataclass
class Change:
    """What one action does to a challenge; `to_status` None means no status move (still serialized)."""

    challenge: dict[str, Any]
    actor: str
    reason: str
    to_status: str | None = None
    set_columns: dict[str, Any] = field(default_factory=dict)
    events: list[tuple[str, dict[str, Any], str | None]] = field(default_factory=list)
    # Further statements built with guard(): they only take effect if this change wins its race.
    extra: list[Statement] = field(default_factory=list)
    # An intermediate status passed through in the same batch (e.g. SOLO INTENT_LOCKED → COMPLETED).
    via: str | None = None
    # Unique per attempt: the guard of every dependent write, so only the winner's writes land.
    change_id: str = field(default_factory=new_id)
    # A change without a status move that still belongs in the history (an outcome proposal): from = to.
    record: bool = False
    # Ids to give events of these types, for rows that must point at them (a proposal at its announcement).
    event_ids: dict[str, str] = field(default_factory=dict)

    def guard(self) -> tuple[str, tuple[Any, ...]]:
        """SQL + params that hold only after this change committed: for guarded INSERT … WHERE EXISTS."""
        return _GUARD, (self.challenge["id"], self.change_id)


def guarded_insert(db: Database, change: Change, insert_sql: str, *values: Any) -> Statement:
    """`insert_sql` is 'INSERT INTO t (cols) SELECT ?, ?, …' without a WHERE; it runs only if the change won."""
    guard_sql, guard_params = change.guard()
    return db.prepare(f"{insert_sql} WHERE EXISTS ({guard_sql})").bind(*values, *guard_params)


def guarded_update(db: Database, change: Change, update_sql: str, *values: Any) -> Statement:
    """`update_sql` is 'UPDATE t SET … WHERE …'; it gets AND EXISTS(guard) so it runs only if the change won."""
    guard_sql, guard_params = change.guard()
    return db.prepare(f"{update_sql} AND EXISTS ({guard_sql})").bind(*values, *guard_params)


def _history(db: Database, change: Change, from_status: str, to_status: str, stamp: str) -> Statement:
    return guarded_insert(
        db,
        change,
        "INSERT INTO challenge_status_history (challenge_id, from_status, to_status, actor, reason, created_at) "
        "SELECT ?, ?, ?, ?, ?, ?",
        change.challenge["id"],
        from_status,
        to_status,
        change.actor,
        change.reason,
        stamp,
    )


def statements(db: Database, change: Change, now: datetime) -> list[Statement]:
    challenge = change.challenge
    current = challenge["status"]
    mode = challenge["mode"]
    path = [current] + ([change.via] if change.via else []) + ([change.to_status] if change.to_status else [])
    for before, after in itertools.pairwise(path):
        if not modes.allowed(mode, before, after):
            raise ApiError(
                "E3014", f"{mode} challenge cannot move from {before} to {after}", {"from": before, "to": after}
            )
    unknown = set(change.set_columns) - UPDATABLE_COLUMNS
    if unknown:
        raise ValueError(f"not updatable: {sorted(unknown)}")
    stamp = format_time(now)
    final_status = path[-1]
    assignments = "".join(f", {name} = ?" for name in change.set_columns)
    update = db.prepare(
        f"UPDATE challenges SET status = ?, version = version + 1, last_change_id = ?, updated_at = ?{assignments} "  # noqa: S608
        "WHERE id = ? AND status = ? AND version = ?"
    ).bind(
        final_status,
        change.change_id,
        stamp,
        *change.set_columns.values(),
        challenge["id"],
        current,
        challenge["version"],
    )
    batch: list[Statement] = [update]
    for before, after in itertools.pairwise(path):
        batch.append(_history(db, change, before, after, stamp))
    if change.record and len(path) == 1:
        batch.append(_history(db, change, current, current, stamp))
    guard_sql, guard_params = change.guard()
    for event_type, payload, user_id in change.events:
        batch.append(
            event_statement(
                db,
                event_type,
                payload,
                now,
                challenge_id=challenge["id"],
                user_id=user_id,
                guard_sql=guard_sql,
                guard_params=guard_params,
                event_id=change.event_ids.get(event_type),
            )
        )
    batch.extend(change.extra)
    return batch


async def apply(db: Database, change: Change, now: datetime) -> None:
    """Commit the change atomically; 409 E3014 when another request moved the challenge first."""
    results = await db.batch(statements(db, change, now))
    if results[0].changes != 1:
        raise ApiError(
            "E3014",
            "The challenge changed while this request was processed; reload and retry",
            {"status": change.challenge["status"]},
        )
