"""Settlement to the unit: every part of a slash at bonds where each share shows, and every ledger entry's account."""

from __future__ import annotations

from dataclasses import FrozenInstanceError

import pytest

from challenges import settlement
from challenges.records import StakeRecord
from challenges.settlement import Entry, StakeEnd, refund_all, settle, split_slash

CREATOR, COUNTERPARTY = "creator-1", "counter-2"
BIG = 2**255 + 7

# (bond, winner, treasury, burn, provers), written out from SPEC §9: floors of 50/10/30/10 %, remainder to treasury.
EXACT_SPLITS = [
    (10_000, 5_000, 1_000, 3_000, 1_000),
    (20_000, 10_000, 2_000, 6_000, 2_000),
    (9_999, 4_999, 1_002, 2_999, 999),
    (19, 9, 4, 5, 1),
    (10, 5, 1, 3, 1),
    (1, 0, 1, 0, 0),
    (0, 0, 0, 0, 0),
    (10**18 + 3, 500_000_000_000_000_001, 100_000_000_000_000_002, 300_000_000_000_000_000, 100_000_000_000_000_000),
    (
        BIG,
        28948022309329048855892746252171976963317496166410141009864396001978282409987,
        5789604461865809771178549250434395392663499233282028201972879200395656481999,
        17368813385597429313535647751303186177990497699846084605918637601186969445992,
        5789604461865809771178549250434395392663499233282028201972879200395656481997,
    ),
]


@pytest.mark.parametrize(("bond", "winner", "treasury", "burn", "provers"), EXACT_SPLITS)
def test_split_is_exact_part_by_part(bond: int, winner: int, treasury: int, burn: int, provers: int) -> None:
    parts = split_slash(bond)
    # Dict equality pins the entry types, every amount and (below) the order the ledger writes them in.
    assert parts == {"SLASH_WINNER": winner, "SLASH_TREASURY": treasury, "SLASH_BURN": burn, "SLASH_PROVERS": provers}
    assert list(parts) == ["SLASH_WINNER", "SLASH_TREASURY", "SLASH_BURN", "SLASH_PROVERS"]
    assert sum(parts.values()) == bond


def test_split_basis_points_are_the_spec_shares() -> None:
    assert settlement.SLASH_SPLIT_BPS == {
        "SLASH_WINNER": 5000,
        "SLASH_TREASURY": 1000,
        "SLASH_BURN": 3000,
        "SLASH_PROVERS": 1000,
    }
    assert (settlement.TREASURY, settlement.BURN, settlement.PROVERS) == ("treasury", "burn", "provers")


@pytest.mark.parametrize("bond", [-1, -10_000, -BIG])
def test_a_negative_bond_is_refused(bond: int) -> None:
    with pytest.raises(ValueError, match=r"^a stake cannot be negative$"):
        split_slash(bond)


def test_a_negative_bond_is_refused_when_slashed_too() -> None:
    with pytest.raises(ValueError, match=r"^a stake cannot be negative$"):
        settle([_stake("s1", COUNTERPARTY, -5)], "CREATOR_WIN", CREATOR, COUNTERPARTY)


def _stake(stake_id: str, user_id: str, amount: int, status: str = "HELD") -> StakeRecord:
    return StakeRecord(
        id=stake_id,
        challenge_id="c1",
        user_id=user_id,
        type="HONESTY_BOND",
        amount=str(amount),
        currency_code="WEI",
        status=status,
        provider="ledger",
        payment_reference=None,
        created_at="2026-11-24T12:00:00.000Z",
        processed_at=None,
    )


def test_user_accounts_are_prefixed() -> None:
    assert settlement.user_account("abc") == "user:abc"
    assert settlement.user_account("") == "user:"


@pytest.mark.parametrize("bond", [10_000, BIG])
def test_creator_win_releases_the_winner_and_slashes_the_loser_to_exact_accounts(bond: int) -> None:
    stakes = [_stake("s-creator", CREATOR, bond), _stake("s-counter", COUNTERPARTY, bond)]
    parts = split_slash(bond)
    assert settle(stakes, "CREATOR_WIN", CREATOR, COUNTERPARTY) == [
        StakeEnd("s-creator", "RELEASED", (Entry("s-creator", "RELEASE", "user:creator-1", bond),)),
        StakeEnd(
            "s-counter",
            "SLASHED",
            (
                Entry("s-counter", "SLASH_WINNER", "user:creator-1", parts["SLASH_WINNER"]),
                Entry("s-counter", "SLASH_TREASURY", "treasury", parts["SLASH_TREASURY"]),
                Entry("s-counter", "SLASH_BURN", "burn", parts["SLASH_BURN"]),
                Entry("s-counter", "SLASH_PROVERS", "provers", parts["SLASH_PROVERS"]),
            ),
        ),
    ]


def test_counterparty_win_at_10000_pays_every_account_its_share() -> None:
    stakes = [_stake("a", CREATOR, 10_000), _stake("b", COUNTERPARTY, 10_000)]
    assert settle(stakes, "COUNTERPARTY_WIN", CREATOR, COUNTERPARTY) == [
        StakeEnd(
            "a",
            "SLASHED",
            (
                Entry("a", "SLASH_WINNER", "user:counter-2", 5_000),
                Entry("a", "SLASH_TREASURY", "treasury", 1_000),
                Entry("a", "SLASH_BURN", "burn", 3_000),
                Entry("a", "SLASH_PROVERS", "provers", 1_000),
            ),
        ),
        StakeEnd("b", "RELEASED", (Entry("b", "RELEASE", "user:counter-2", 10_000),)),
    ]


@pytest.mark.parametrize("outcome", ["DRAW", "NO_CONTEST", None, "", "SOMETHING_ELSE"])
def test_no_winner_refunds_every_held_stake_to_its_owner(outcome: str | None) -> None:
    stakes = [_stake("a", CREATOR, 7), _stake("b", COUNTERPARTY, BIG)]
    assert settle(stakes, outcome, CREATOR, COUNTERPARTY) == [
        StakeEnd("a", "REFUNDED", (Entry("a", "REFUND", "user:creator-1", 7),)),
        StakeEnd("b", "REFUNDED", (Entry("b", "REFUND", "user:counter-2", BIG),)),
    ]


def test_a_counterparty_win_without_a_counterparty_refunds() -> None:
    stakes = [_stake("a", CREATOR, 10)]
    assert settle(stakes, "COUNTERPARTY_WIN", CREATOR, None) == [
        StakeEnd("a", "REFUNDED", (Entry("a", "REFUND", "user:creator-1", 10),)),
    ]


@pytest.mark.parametrize("status", ["RELEASED", "SLASHED", "REFUNDED", "PENDING", "ESCROW", "AHELD", "held", ""])
def test_only_held_stakes_move(status: str) -> None:
    stakes = [_stake("done", COUNTERPARTY, 10_000, status), _stake("held", COUNTERPARTY, 10, "HELD")]
    ends = settle(stakes, "CREATOR_WIN", CREATOR, COUNTERPARTY)
    assert [end.stake_id for end in ends] == ["held"]
    assert refund_all(stakes) == [StakeEnd("held", "REFUNDED", (Entry("held", "REFUND", "user:counter-2", 10),))]


def test_refund_all_refunds_both_parties_whatever_they_hold() -> None:
    stakes = [_stake("a", CREATOR, 10_000), _stake("b", COUNTERPARTY, 1), _stake("c", CREATOR, 0)]
    assert refund_all(stakes) == [
        StakeEnd("a", "REFUNDED", (Entry("a", "REFUND", "user:creator-1", 10_000),)),
        StakeEnd("b", "REFUNDED", (Entry("b", "REFUND", "user:counter-2", 1),)),
        StakeEnd("c", "REFUNDED", (Entry("c", "REFUND", "user:creator-1", 0),)),
    ]
    assert refund_all([]) == []


def test_ledger_records_are_frozen_values() -> None:
    entry = Entry("s", "REFUND", "user:u", 1)
    end = StakeEnd("s", "REFUNDED", (entry,))
    assert {entry, Entry("s", "REFUND", "user:u", 1)} == {entry}
    assert len({end, StakeEnd("s", "REFUNDED", (entry,))}) == 1
    with pytest.raises(FrozenInstanceError):
        entry.amount = 2  # type: ignore[misc]
    with pytest.raises(FrozenInstanceError):
        end.status = "SLASHED"  # type: ignore[misc]
