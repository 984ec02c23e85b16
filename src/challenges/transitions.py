"""The change toolkit: an action's Change, its guards and payloads, and the one atomic D1 batch that commits it
(conditional update on (status, version) + history + events + extras + the read-back of the aggregate)."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from challenges import attestation, modes, store
from challenges.deadlines import next_deadline
from challenges.records import ChallengeRecord
from challenges.store import Aggregate
from core.auth import Principal
from core.clock import format_time, parse_time
from core.errors import ApiError
from core.ids import new_id
from db.port import Database, Statement
from relay.outbox import event_statement


@dataclass
class Change:
    """What one action does to a challenge; `to_status` None means no status move (still serialized)."""

    challenge: ChallengeRecord
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

    def guard(self) -> store.Guard:
        """What holds only after this change committed: the condition of every write that depends on it."""
        return store.guard(self.challenge.id, self.change_id)

    def merged(self) -> ChallengeRecord:
        """The challenge as it reads once this change's columns are written (its status aside)."""
        return self.challenge.with_columns(self.set_columns)


def actor(principal: Principal) -> str:
    return "admin" if principal.is_admin else f"user:{principal.user_id}"


def event_payload(challenge: ChallengeRecord, status: str, **extra: Any) -> dict[str, Any]:
    return {
        "challenge_id": challenge.id,
        "mode": challenge.mode,
        "status": status,
        "from_status": challenge.status,
        **extra,
    }


def ensure_action(challenge: ChallengeRecord, action: str) -> None:
    if modes.action_allowed(challenge.mode, challenge.status, action):
        return
    raise ApiError(
        "E3014",
        f"'{action}' is not possible for a {challenge.mode} challenge in {challenge.status}",
        {"action": action, "status": challenge.status, "mode": challenge.mode},
    )


def ensure_before(name: str, deadline: str | None, now: datetime, code: str, message: str | None = None) -> None:
    """Refuse with `code` once the deadline `name` (a column) has passed (no deadline: always open)."""
    if deadline and parse_time(deadline) <= now:
        raise ApiError(code, message, {name: deadline})


def require_role(role: str | None, *allowed: str) -> None:
    if role not in allowed:
        raise ApiError("E9007", "Only " + " or ".join(name.lower() for name in allowed) + " may do this")


def with_deadline(change: Change, to_status: str) -> Change:
    """Keep next_deadline_at in step with the status the change lands in."""
    change.set_columns["next_deadline_at"] = next_deadline(to_status, change.merged())
    return change


def add_attestations(
    db: Database, change: Change, kind_terms: Sequence[tuple[str, dict[str, Any]]], now: datetime
) -> None:
    """Store each (kind, terms) attestation with the change, guarded by it."""
    stamp = format_time(now)
    for kind, terms in kind_terms:
        hash_, canonical_input, openings = attestation.stored_form(terms)
        change.extra.append(
            store.attestation_insert(
                db,
                change.guard(),
                attestation_id=new_id(),
                challenge_id=change.challenge.id,
                kind=kind,
                hash=hash_,
                canonical_input=canonical_input,
                openings=openings,
                stamp=stamp,
            )
        )


def _history(db: Database, change: Change, from_status: str, to_status: str, stamp: str) -> Statement:
    return store.history_insert(
        db, change.guard(), change.challenge.id, from_status, to_status, change.actor, change.reason, stamp
    )


def statements(db: Database, change: Change, now: datetime) -> list[Statement]:
    challenge = change.challenge
    current = challenge.status
    mode = challenge.mode
    path = [current] + ([change.via] if change.via else []) + ([change.to_status] if change.to_status else [])
    for before, after in itertools.pairwise(path):
        if not modes.allowed(mode, before, after):
            raise ApiError(
                "E3014", f"{mode} challenge cannot move from {before} to {after}", {"from": before, "to": after}
            )
    stamp = format_time(now)
    update = store.transition_update(
        db,
        challenge.id,
        from_status=current,
        version=challenge.version,
        to_status=path[-1],
        change_id=change.change_id,
        stamp=stamp,
        set_columns=change.set_columns,
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
                challenge_id=challenge.id,
                user_id=user_id,
                guard_sql=guard_sql,
                guard_params=guard_params,
                event_id=change.event_ids.get(event_type),
            )
        )
    batch.extend(change.extra)
    return batch


async def apply(db: Database, change: Change, now: datetime) -> Aggregate | None:
    """Commit the change atomically and read the aggregate back in the same batch (one round trip).

    409 E3014 when another request moved the challenge first.
    """
    changed, after = await store.commit(db, statements(db, change, now), change.challenge.id)
    if changed != 1:
        raise ApiError(
            "E3014",
            "The challenge changed while this request was processed; reload and retry",
            {"status": change.challenge.status},
        )
    return after
