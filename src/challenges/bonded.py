"""FIRE and ENFORCED before intent lock: acceptance and stakes, in either order, then the lock itself."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from challenges import attestation, modes, stakes, transitions
from challenges.records import ChallengeRecord, StakeRecord
from challenges.store import Aggregate
from challenges.transitions import Change, actor, ensure_before, event_payload, with_deadline
from core.auth import Principal
from core.clock import format_time
from core.context import Services
from core.errors import ApiError

STAKING_STATUSES = frozenset({modes.DRAFT, modes.AWAITING_COUNTERPARTY})


def _side_stakes(stake_rows: list[StakeRecord], user_id: str | None) -> dict[str, Any]:
    return {
        "stakes": [
            {"type": row.type, "amount": row.amount, "currency_code": row.currency_code}
            for row in stake_rows
            if row.user_id == user_id
        ]
    }


def add_lock(services: Services, aggregate: Aggregate, change: Change, held: list[StakeRecord], now: datetime) -> None:
    """Turn `change` into the intent lock: FIRE goes on to AWAITING_RESOLUTION, ENFORCED to ACTIVE."""
    challenge = change.merged()
    stamp = format_time(now)
    initiator = attestation.side_terms(challenge, "CREATOR", _side_stakes(held, challenge.creator_user_id), stamp)
    counter = attestation.side_terms(
        challenge, "COUNTERPARTY", _side_stakes(held, challenge.counterparty_user_id), stamp
    )
    change.set_columns |= {
        "intent_locked_at": stamp,
        "initiator_hash": attestation.digest(initiator),
        "counter_hash": attestation.digest(counter),
    }
    change.via = modes.INTENT_LOCKED
    change.events.append(("challenge.intent_locked", event_payload(change.challenge, modes.INTENT_LOCKED), None))
    if change.challenge.mode == modes.ENFORCED:
        config = aggregate.enforced_config
        assert config is not None  # an ENFORCED challenge is created with its config
        response_deadline = format_time(now + timedelta(seconds=int(config.response_timeout_seconds)))
        change.to_status = modes.ACTIVE
        change.set_columns["response_deadline"] = response_deadline
        change.events.append(
            (
                "challenge.activated",
                event_payload(change.challenge, modes.ACTIVE, response_deadline=response_deadline),
                None,
            )
        )
    else:
        change.to_status = modes.AWAITING_RESOLUTION
    transitions.add_attestations(services.db, change, [("INITIATOR", initiator), ("COUNTER", counter)], now)
    with_deadline(change, change.to_status)


def _check_accept_window(challenge: ChallengeRecord, now: datetime) -> None:
    ensure_before("accept_deadline", challenge.accept_deadline, now, "E3013")


async def accept(services: Services, aggregate: Aggregate, principal: Principal) -> Aggregate | None:
    """The counterparty accepts; intent locks now if both stakes are already held, else when they are."""
    challenge = aggregate.challenge
    now = services.now()
    if challenge.accepted_at:
        raise ApiError("E3015", details={"status": challenge.status})
    _check_accept_window(challenge, now)
    change = Change(
        challenge,
        actor(principal),
        "accepted",
        set_columns={"counterparty_user_id": principal.user_id, "accepted_at": format_time(now)},
        events=[("challenge.accepted", event_payload(challenge, challenge.status), challenge.creator_user_id)],
    )
    rule = stakes.rule_of(aggregate)
    held = aggregate.held_stakes
    if stakes.requirement_met(rule, change.merged(), held):
        add_lock(services, aggregate, change, held, now)
    return await transitions.apply(services.db, change, now)


async def stake(
    services: Services,
    aggregate: Aggregate,
    principal: Principal,
    stake_type: str,
    amount: str,
    currency_code: str,
    payment_reference: str | None,
) -> Aggregate | None:
    """Hold a party's stake on the ledger; the last missing stake of an accepted challenge locks intent."""
    challenge, role = aggregate.challenge, aggregate.role
    if role not in {"CREATOR", "COUNTERPARTY"}:
        raise ApiError("E9007", "Only the parties stake")
    if challenge.status not in STAKING_STATUSES:
        raise ApiError("E3014", "Stakes are taken only before intent lock", {"status": challenge.status})
    db = services.db
    rule = stakes.rule_of(aggregate)
    value = stakes.validate(rule, stake_type, amount, currency_code)
    user_id = principal.user_id or ""
    existing = next((row for row in aggregate.stakes if row.user_id == user_id and row.type == stake_type), None)
    if existing is not None:
        raise ApiError("E5011", "This stake was already placed", {"status": existing.status})
    now = services.now()
    if challenge.status == modes.AWAITING_COUNTERPARTY:
        _check_accept_window(challenge, now)
    change = Change(challenge, actor(principal), "stake held")
    if role == "COUNTERPARTY" and challenge.counterparty_user_id is None:
        change.set_columns["counterparty_user_id"] = user_id
    stake_id, statements = stakes.hold_statements(
        db, change, user_id, stake_type, value, currency_code, payment_reference, now
    )
    change.extra.extend(statements)
    change.events.append(
        (
            "stake.held",
            {
                "challenge_id": challenge.id,
                "stake_id": stake_id,
                "type": stake_type,
                "amount": str(value),
                "currency_code": currency_code,
                "status": "HELD",
            },
            user_id,
        )
    )
    # The stake this batch holds, as the read-back will show it.
    placed = StakeRecord(
        id=stake_id,
        challenge_id=challenge.id,
        user_id=user_id,
        type=stake_type,
        amount=str(value),
        currency_code=currency_code,
        status="HELD",
        provider="LEDGER",
        payment_reference=payment_reference,
        created_at=format_time(now),
        processed_at=None,
    )
    held = [*aggregate.held_stakes, placed]
    if challenge.accepted_at and stakes.requirement_met(rule, change.merged(), held):
        add_lock(services, aggregate, change, held, now)
    return await transitions.apply(db, change, now)
