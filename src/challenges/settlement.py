"""Exact money movement: how a resolved challenge's stakes end, as ledger entries that sum to what was held."""

from __future__ import annotations

from dataclasses import dataclass

from challenges.records import StakeRecord

# Basis points of a slashed bond; the integer remainder goes to the treasury so the parts sum exactly.
SLASH_SPLIT_BPS = {"SLASH_WINNER": 5000, "SLASH_TREASURY": 1000, "SLASH_BURN": 3000, "SLASH_PROVERS": 1000}
TREASURY, BURN, PROVERS = "treasury", "burn", "provers"


@dataclass(frozen=True)
class Entry:
    """One ledger movement of (part of) a stake."""

    stake_id: str
    entry_type: str
    account: str
    amount: int


@dataclass(frozen=True)
class StakeEnd:
    """How one HELD stake ends: its new status and the entries that move its whole amount."""

    stake_id: str
    status: str
    entries: tuple[Entry, ...]


def split_slash(amount: int) -> dict[str, int]:
    """50 % winner, 10 % treasury, 30 % burn, 10 % provers, floors; the remainder to the treasury."""
    if amount < 0:
        raise ValueError("a stake cannot be negative")
    parts = {entry_type: amount * bps // 10_000 for entry_type, bps in SLASH_SPLIT_BPS.items()}
    parts["SLASH_TREASURY"] += amount - sum(parts.values())
    return parts


def user_account(user_id: str) -> str:
    return f"user:{user_id}"


def settle(
    stakes: list[StakeRecord], outcome: str | None, creator_id: str, counterparty_id: str | None
) -> list[StakeEnd]:
    """The end of every HELD stake for an outcome. Winner's stakes are released, the loser's slashed;
    DRAW, NO_CONTEST or no outcome refund everything."""
    winner = {"CREATOR_WIN": creator_id, "COUNTERPARTY_WIN": counterparty_id}.get(outcome or "")
    ends: list[StakeEnd] = []
    for stake in stakes:
        if stake.status != "HELD":
            continue
        amount = int(stake.amount)
        owner = stake.user_id
        if winner is None:
            ends.append(StakeEnd(stake.id, "REFUNDED", (Entry(stake.id, "REFUND", user_account(owner), amount),)))
        elif owner == winner:
            ends.append(StakeEnd(stake.id, "RELEASED", (Entry(stake.id, "RELEASE", user_account(owner), amount),)))
        else:
            accounts = {"SLASH_WINNER": user_account(winner), "SLASH_TREASURY": TREASURY, "SLASH_BURN": BURN,
                        "SLASH_PROVERS": PROVERS}  # fmt: skip
            entries = tuple(
                Entry(stake.id, entry_type, accounts[entry_type], part)
                for entry_type, part in split_slash(amount).items()
            )
            ends.append(StakeEnd(stake.id, "SLASHED", entries))
    return ends


def refund_all(stakes: list[StakeRecord]) -> list[StakeEnd]:
    return settle(stakes, None, "", None)
