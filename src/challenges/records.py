"""The typed rows of the challenge aggregate: one frozen dataclass per stored row (the store parses them)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any, Literal

AssetType = Literal["NATIVE", "ERC20"]


@dataclass(frozen=True)
class ChallengeRecord:
    """A `challenges` row, every column (in the table's order)."""

    id: str
    mode: str
    status: str
    version: int
    title: str
    description: str | None
    creator_user_id: str
    counterparty_user_id: str | None
    counterparty_wallet: str | None
    expires_at: str | None
    resolution_due_at: str | None
    accept_deadline: str | None
    verification_deadline: str | None
    response_deadline: str | None
    dispute_deadline: str | None
    next_deadline_at: str | None
    intent_locked_at: str | None
    completed_at: str | None
    outcome: str | None
    proposed_outcome: str | None
    resolution_data: str | None
    initiator_hash: str | None
    counter_hash: str | None
    final_hash: str | None
    created_at: str
    updated_at: str
    last_change_id: str | None
    accepted_at: str | None
    proposed_by: str | None
    proposed_at: str | None
    proposal_event_id: str | None

    def with_columns(self, columns: Mapping[str, Any]) -> ChallengeRecord:
        """The row as it will read once `columns` (column → new value) are written."""
        return replace(self, **columns)


@dataclass(frozen=True)
class WalletRequirementRecord:
    """A `challenge_wallet_requirements` row: the wallet a side must verify."""

    challenge_id: str
    side: str
    wallet_address: str
    network: str
    wallet_status: str


@dataclass(frozen=True)
class FundsRequirementRecord:
    """A `funds_requirements` row: one funds check of a side, PENDING until it runs."""

    id: str
    challenge_id: str
    side: str
    position: int
    wallet_address: str
    network: str
    asset_type: AssetType
    token_address: str | None
    min_balance: str
    currency_symbol: str | None
    status: str
    attestation_id: str | None
    checked_at: str | None


@dataclass(frozen=True)
class StakeRecord:
    """A `stakes` row; amounts are decimal strings of base units."""

    id: str
    challenge_id: str
    user_id: str
    type: str
    amount: str
    currency_code: str
    status: str
    provider: str
    payment_reference: str | None
    created_at: str
    processed_at: str | None


@dataclass(frozen=True)
class SlashEntry:
    """One SLASH_* ledger entry of the challenge (what a settlement paid out where)."""

    challenge_id: str
    entry_type: str
    amount: str


@dataclass(frozen=True)
class Oracle:
    """The price-feed predicate of a FIRE challenge that resolves by ORACLE (all set, by the table's CHECK)."""

    network: str
    feed_address: str
    comparator: str
    threshold: str
    resolve_after: str


@dataclass(frozen=True)
class FireConfigRecord:
    """A `fire_configs` row."""

    challenge_id: str
    honesty_bond_amount: str
    currency_code: str
    resolution_strategy: str
    oracle_network: str | None
    oracle_feed_address: str | None
    oracle_comparator: str | None
    oracle_threshold: str | None
    oracle_resolve_after: str | None
    oracle_next_check_at: str | None

    @property
    def oracle(self) -> Oracle | None:
        """The feed and predicate when the challenge resolves by ORACLE, else None."""
        if self.resolution_strategy != "ORACLE":
            return None
        network, feed, comparator = self.oracle_network, self.oracle_feed_address, self.oracle_comparator
        threshold, resolve_after = self.oracle_threshold, self.oracle_resolve_after
        if network is None or feed is None or comparator is None or threshold is None or resolve_after is None:
            return None
        return Oracle(network, feed, comparator, threshold, resolve_after)


@dataclass(frozen=True)
class EnforcedConfigRecord:
    """An `enforced_configs` row."""

    challenge_id: str
    accept_timeout_seconds: int
    response_timeout_seconds: int
    dispute_timeout_seconds: int
    stake_amount: str | None
    currency_code: str | None


@dataclass(frozen=True)
class HistoryEntry:
    """One `challenge_status_history` entry as GET /challenges/{id}/events shows it."""

    from_status: str | None
    to_status: str
    actor: str
    reason: str | None
    created_at: str
