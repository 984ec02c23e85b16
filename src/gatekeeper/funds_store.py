"""The funds_attestations store: typed records in (INSERTs for the caller's own batch), typed records out."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from core.clock import format_time
from db.port import Database, Statement

__all__ = [
    "AssetType",
    "FundsStatus",
    "NewAttestation",
    "StoredAttestation",
    "insert_statement",
    "insert_statements",
    "legacy_commitments",
    "load_attestation",
    "rekey_statement",
]

AssetType = Literal["NATIVE", "ERC20"]
FundsStatus = Literal["PASSED", "FAILED"]

_COLUMNS = (
    "id, challenge_id, requirement_id, requested_by, wallet_address, network, chain_id, asset_type, token_address, "
    "min_balance, status, block_number, provider_host, balance_commitment, salt, commitment_scheme, checked_at"
)
_INSERT = f"INSERT INTO funds_attestations ({_COLUMNS}) "


@dataclass(frozen=True)
class NewAttestation:
    """One funds check to store, field for field the row (in column order); holds no balance."""

    attestation_id: str
    challenge_id: str | None
    requirement_id: str | None
    requested_by: str | None
    wallet_address: str
    network: str
    chain_id: int
    asset_type: AssetType
    token_address: str | None
    min_balance: int
    status: FundsStatus
    block_number: int
    provider_host: str
    balance_commitment: str
    # Kept out of repr: with the commitment it would let anyone who sees a log line test balance guesses.
    salt: str = field(repr=False)
    commitment_scheme: str
    checked_at: datetime

    def values(self) -> tuple[Any, ...]:
        """The row's values in column order."""
        return (
            self.attestation_id,
            self.challenge_id,
            self.requirement_id,
            self.requested_by,
            self.wallet_address,
            self.network,
            self.chain_id,
            self.asset_type,
            self.token_address,
            # TEXT: a uint256 does not survive D1's JS numbers.
            str(self.min_balance),
            self.status,
            self.block_number,
            self.provider_host,
            self.balance_commitment,
            self.salt,
            self.commitment_scheme,
            format_time(self.checked_at),
        )


@dataclass(frozen=True)
class StoredAttestation:
    """What re-verifying a stored check needs; `owner_user_id` is whose balance it is (see load_attestation)."""

    attestation_id: str
    network: str
    block_number: int
    status: FundsStatus
    checked_at: str
    requested_by: str | None
    owner_user_id: str | None
    balance_commitment: str
    salt: str = field(repr=False)
    commitment_scheme: str | None = None


def insert_statement(
    db: Database, record: NewAttestation, *, guard_sql: str | None = None, guard_params: tuple[Any, ...] = ()
) -> Statement:
    """The INSERT of one attestation, for the caller's own batch; with a guard, only if the guard finds a row.

    The guard works as in relay.outbox.event_statement: riding with a conditional update, the
    attestation is written only when that update's condition still holds.
    """
    values = record.values()
    placeholders = ", ".join("?" * len(values))
    if guard_sql is None:
        return db.prepare(_INSERT + f"VALUES ({placeholders})").bind(*values)
    return db.prepare(_INSERT + f"SELECT {placeholders} WHERE EXISTS ({guard_sql})").bind(*values, *guard_params)


def insert_statements(
    db: Database,
    records: Sequence[NewAttestation],
    *,
    guard_sql: str | None = None,
    guard_params: tuple[Any, ...] = (),
) -> list[Statement]:
    """One INSERT per record, in order (see insert_statement)."""
    return [insert_statement(db, record, guard_sql=guard_sql, guard_params=guard_params) for record in records]


async def load_attestation(db: Database, attestation_id: str) -> StoredAttestation | None:
    """One stored check with whose balance it is: a challenge requirement's side user, else nobody.

    One query: the requirement's side is resolved to the creator or counterparty of its challenge.
    """
    row = await (
        db.prepare(
            "SELECT a.id, a.network, a.block_number, a.status, a.checked_at, a.requested_by, a.balance_commitment,"
            " a.salt, a.commitment_scheme,"
            " CASE r.side WHEN 'CREATOR' THEN c.creator_user_id WHEN 'COUNTERPARTY' THEN c.counterparty_user_id"
            " END AS owner_user_id"
            " FROM funds_attestations a"
            " LEFT JOIN funds_requirements r ON r.id = a.requirement_id"
            " LEFT JOIN challenges c ON c.id = r.challenge_id"
            " WHERE a.id = ?"
        )
        .bind(attestation_id)
        .first()
    )
    if row is None:
        return None
    return StoredAttestation(
        attestation_id=row["id"],
        network=row["network"],
        block_number=int(row["block_number"]),
        status=row["status"],
        checked_at=row["checked_at"],
        requested_by=row["requested_by"],
        owner_user_id=row["owner_user_id"],
        balance_commitment=row["balance_commitment"],
        salt=row["salt"],
        commitment_scheme=row["commitment_scheme"],
    )


# -- commitments from before keying (migration 0008): re-keyed in place by the scheduled job -------------


@dataclass(frozen=True)
class LegacyCommitment:
    """A row whose commitment is plain sha256(balance ":" salt): brute-forceable with the salt beside it."""

    attestation_id: str
    balance_commitment: str


async def legacy_commitments(db: Database, limit: int) -> list[LegacyCommitment]:
    rows = (
        await db.prepare(
            "SELECT id, balance_commitment FROM funds_attestations WHERE commitment_scheme IS NULL ORDER BY id LIMIT ?"
        )
        .bind(limit)
        .all()
    ).results
    return [LegacyCommitment(row["id"], row["balance_commitment"]) for row in rows]


def rekey_statement(db: Database, legacy: LegacyCommitment, commitment: str, scheme: str) -> Statement:
    """Replace a legacy commitment by its keyed wrap, only if the row is still what was read."""
    return db.prepare(
        "UPDATE funds_attestations SET balance_commitment = ?, commitment_scheme = ?"
        " WHERE id = ? AND commitment_scheme IS NULL AND balance_commitment = ?"
    ).bind(commitment, scheme, legacy.attestation_id, legacy.balance_commitment)
