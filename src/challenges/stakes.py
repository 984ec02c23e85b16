"""Stakes on the ledger provider: taking one (HELD), and the guarded writes that end them exactly once."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from challenges import modes, settlement, store
from challenges.records import ChallengeRecord, StakeRecord
from challenges.store import Aggregate
from challenges.transitions import Change
from core.clock import format_time
from core.errors import ApiError
from core.ids import new_id
from db.port import Database, Statement

STAKE_EVENTS = {"RELEASED": "stake.released", "SLASHED": "stake.slashed", "REFUNDED": "stake.refunded"}
ESCROW = "escrow"


@dataclass(frozen=True)
class StakeRule:
    """What a mode requires from each party before intent lock."""

    type: str
    amount: int
    currency_code: str


def rule_of(aggregate: Aggregate) -> StakeRule | None:
    """The stake the challenge's mode requires of each party (from its loaded config), or None."""
    mode = aggregate.challenge.mode
    if mode == modes.FIRE:
        fire = aggregate.fire_config
        return StakeRule("HONESTY_BOND", int(fire.honesty_bond_amount), fire.currency_code) if fire else None
    if mode == modes.ENFORCED:
        enforced = aggregate.enforced_config
        if enforced and enforced.stake_amount and enforced.currency_code:
            return StakeRule("BASE", int(enforced.stake_amount), enforced.currency_code)
    return None


def parties(challenge: ChallengeRecord) -> list[str]:
    return [user for user in (challenge.creator_user_id, challenge.counterparty_user_id) if user]


def requirement_met(rule: StakeRule | None, challenge: ChallengeRecord, stakes: list[StakeRecord]) -> bool:
    """Both parties hold the required stake (trivially true when the mode requires none)."""
    if rule is None:
        return True
    holders = {stake.user_id for stake in stakes if stake.type == rule.type and stake.status == "HELD"}
    return challenge.counterparty_user_id is not None and set(parties(challenge)) <= holders


def validate(rule: StakeRule | None, stake_type: str, amount: str, currency_code: str) -> int:
    """The amount as an integer, or the documented error: a bond must be exactly the configured one."""
    if rule is None:
        raise ApiError("E3014", "This challenge takes no stakes", {"mode_requires": None})
    if stake_type != rule.type:
        raise ApiError("E4003", f"This challenge takes a {rule.type} stake", {"expected_type": rule.type})
    if not amount.isascii() or not amount.isdigit() or len(amount) > 78:
        raise ApiError("E4003", "amount must be a decimal string of base units", {"field": "amount"})
    value = int(amount)
    if currency_code != rule.currency_code:
        raise ApiError("E4003", "Wrong currency for this stake", {"expected_currency": rule.currency_code})
    if value < rule.amount:
        raise ApiError("E5012", details={"required": str(rule.amount), "currency_code": rule.currency_code})
    if value != rule.amount:
        raise ApiError("E4003", "The stake must equal the configured amount exactly", {"required": str(rule.amount)})
    return value


def hold_statements(
    db: Database,
    change: Change,
    user_id: str,
    stake_type: str,
    amount: int,
    currency: str,
    reference: str | None,
    now: datetime,
) -> tuple[str, list[Statement]]:
    """Insert a HELD stake and its HOLD ledger entry, both only if the change wins."""
    stake_id = new_id()
    stamp = format_time(now)
    challenge_id = change.challenge.id
    return stake_id, [
        store.stake_insert(
            db,
            change.guard(),
            stake_id=stake_id,
            challenge_id=challenge_id,
            user_id=user_id,
            stake_type=stake_type,
            amount=str(amount),
            currency_code=currency,
            payment_reference=reference,
            stamp=stamp,
        ),
        store.ledger_insert(
            db,
            change.guard(),
            entry_id=new_id(),
            stake_id=stake_id,
            challenge_id=challenge_id,
            entry_type="HOLD",
            account=ESCROW,
            amount=str(amount),
            currency_code=currency,
            stamp=stamp,
        ),
    ]


def end_statements(
    db: Database, change: Change, stakes: list[StakeRecord], ends: list[settlement.StakeEnd], now: datetime
) -> None:
    """Append the guarded writes ending each stake: status (only from HELD), ledger entries, one event each."""
    stamp = format_time(now)
    by_id = {stake.id: stake for stake in stakes}
    for end in ends:
        stake = by_id[end.stake_id]
        change.extra.append(store.stake_end_update(db, change.guard(), end.stake_id, end.status, stamp))
        for entry in end.entries:
            change.extra.append(
                store.ledger_insert(
                    db,
                    change.guard(),
                    entry_id=new_id(),
                    stake_id=end.stake_id,
                    challenge_id=change.challenge.id,
                    entry_type=entry.entry_type,
                    account=entry.account,
                    amount=str(entry.amount),
                    currency_code=stake.currency_code,
                    stamp=stamp,
                )
            )
        payload = {
            "challenge_id": change.challenge.id,
            "stake_id": end.stake_id,
            "type": stake.type,
            "amount": stake.amount,
            "currency_code": stake.currency_code,
            "status": end.status,
        }
        change.events.append((STAKE_EVENTS[end.status], payload, stake.user_id))


def settle_into(db: Database, change: Change, held: list[StakeRecord], outcome: str | None, now: datetime) -> None:
    """Add the stake endings for `outcome` to a finishing change (refund all when there is no winner)."""
    if not held:
        return
    ends = settlement.settle(held, outcome, change.challenge.creator_user_id, change.challenge.counterparty_user_id)
    end_statements(db, change, held, ends, now)


def refund_into(db: Database, change: Change, held: list[StakeRecord], now: datetime) -> None:
    """Add a refund of every `held` stake to a change that ends the challenge without an outcome."""
    if held:
        end_statements(db, change, held, settlement.refund_all(held), now)
