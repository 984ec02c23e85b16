"""Wallet-ownership store: wallet challenges, and the guarded batch that links a wallet to its user (all its SQL)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from core.clock import format_time
from db.port import Database, QueryResult, Statement
from relay.outbox import event_statement

# Wallet challenges past their expiry that one scheduled run marks EXPIRED.
EXPIRE_BATCH = 500


@dataclass(frozen=True)
class ChallengeRow:
    """A stored wallet challenge, with the wallet's current owner (None: the wallet has no row yet)."""

    id: str
    wallet_address: str
    chain_id: str
    requested_by: str | None
    message: str
    status: str
    expires_at: str
    owner_user_id: str | None
    format: str  # "plain" or "siwe"
    nonce: str


@dataclass(frozen=True)
class LinkPlan:
    """Which user the wallet ends up with, and what ownership we expect to find when we write."""

    user_id: str
    previous_owner: str  # '' when the wallet has no row yet
    new_user: bool
    relinked_from: str | None


async def insert_challenge(
    db: Database,
    challenge_id: str,
    address: str,
    chain_id: str,
    requested_by: str | None,
    message_format: str,
    message: str,
    nonce: str,
    issued_at: str,
    expires_at: str,
) -> None:
    await (
        db.prepare(
            "INSERT INTO wallet_challenges (id, wallet_address, chain_id, requested_by, format, message, nonce, "
            "status, issued_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, 'PENDING', ?, ?)"
        )
        .bind(challenge_id, address, chain_id, requested_by, message_format, message, nonce, issued_at, expires_at)
        .run()
    )


def challenge_statement(db: Database, challenge_id: str) -> Statement:
    """The challenge and the wallet's current owner in one statement (it can ride in the auth batch)."""
    return db.prepare(
        "SELECT c.id, c.wallet_address, c.chain_id, c.requested_by, c.message, c.status, c.expires_at, "
        "c.format, c.nonce, w.user_id AS owner_user_id FROM wallet_challenges AS c "
        "LEFT JOIN wallets AS w ON w.address = c.wallet_address WHERE c.id = ?"
    ).bind(challenge_id)


def challenge_from(result: QueryResult) -> ChallengeRow | None:
    if not result.results:
        return None
    row = result.results[0]
    return ChallengeRow(
        id=row["id"],
        wallet_address=row["wallet_address"],
        chain_id=row["chain_id"],
        requested_by=row["requested_by"],
        message=row["message"],
        status=row["status"],
        expires_at=row["expires_at"],
        owner_user_id=row["owner_user_id"],
        format=row["format"],
        nonce=row["nonce"],
    )


async def load_challenge(db: Database, challenge_id: str) -> ChallengeRow | None:
    """The challenge and the wallet's current owner in one round trip: D1 calls are network hops."""
    return challenge_from(await challenge_statement(db, challenge_id).all())


async def expire_challenge(db: Database, challenge_id: str) -> None:
    # Conditional, so it can never overwrite a verification that won just before the deadline.
    await (
        db.prepare("UPDATE wallet_challenges SET status = 'EXPIRED' WHERE id = ? AND status = 'PENDING'")
        .bind(challenge_id)
        .run()
    )


async def expire_due(db: Database, now: datetime, *, limit: int = EXPIRE_BATCH) -> int:
    """Mark PENDING wallet challenges past their expiry as EXPIRED (at most `limit`); how many were."""
    result = await (
        db.prepare(
            "UPDATE wallet_challenges SET status = 'EXPIRED' WHERE id IN ("
            "SELECT id FROM wallet_challenges WHERE status = 'PENDING' AND expires_at <= ? LIMIT ?)"
        )
        .bind(format_time(now), limit)
        .run()
    )
    return result.changes


# True exactly when the final UPDATE will win: the challenge is still PENDING and unexpired, and the
# wallet's owner is still what the plan saw (or already the plan's user, after our own upsert). Every
# write in the batch carries it, so a loser of any race writes nothing at all.
_WIN_CONDITION = (
    "id = ? AND status = 'PENDING' AND expires_at > ? "
    "AND COALESCE((SELECT user_id FROM wallets WHERE address = ?), '') IN (?, ?)"
)
# Built only from the constant text above; every value is a bound parameter.
_WIN_GUARD = f"SELECT 1 FROM wallet_challenges WHERE {_WIN_CONDITION}"  # noqa: S608
_INSERT_USER_SQL = f"INSERT INTO users (id, created_at, updated_at) SELECT ?, ?, ? WHERE EXISTS ({_WIN_GUARD})"
# linked_at moves only when the owner changes: the old owner's sessions for the wallet end there (core.auth).
_UPSERT_WALLET_SQL = (
    "INSERT INTO wallets (address, user_id, first_verified_at, last_verified_at, linked_at) "
    f"SELECT ?, ?, ?, ?, ? WHERE EXISTS ({_WIN_GUARD}) "
    "ON CONFLICT (address) DO UPDATE SET user_id = excluded.user_id, last_verified_at = excluded.last_verified_at, "
    "linked_at = CASE WHEN wallets.user_id = excluded.user_id THEN wallets.linked_at ELSE excluded.linked_at END"
)
# A re-link revokes every other user's verification of the wallet: those no longer satisfy gatekeeper checks.
_REVOKE_OTHERS_SQL = (
    "UPDATE wallet_challenges SET revoked_at = ? WHERE wallet_address = ? AND status = 'VERIFIED' "  # noqa: S608
    f"AND verified_user_id <> ? AND revoked_at IS NULL AND EXISTS ({_WIN_GUARD})"
)
_WIN_UPDATE_SQL = (
    "UPDATE wallet_challenges SET status = 'VERIFIED', verified_at = ?, verified_user_id = ?, "  # noqa: S608
    f"signature_type = ? WHERE {_WIN_CONDITION}"
)


async def commit_link(db: Database, row: ChallengeRow, plan: LinkPlan, signature_type: str, now: datetime) -> bool:
    """One atomic batch: user (if new), wallet upsert, revocations (re-link), event, the winning UPDATE; True if won.

    The UPDATE comes last, not first: verified_user_id references users(id), so a new user must exist
    before it, and guarding the earlier statements on "still PENDING" (rather than on the values the
    UPDATE wrote) keeps two verifications in the same millisecond by the same user from both matching.
    """
    stamp = format_time(now)
    address: str = row.wallet_address
    guard = (row.id, stamp, address, plan.previous_owner, plan.user_id)
    statements: list[Statement] = []
    if plan.new_user:
        statements.append(db.prepare(_INSERT_USER_SQL).bind(plan.user_id, stamp, stamp, *guard))
    statements.append(db.prepare(_UPSERT_WALLET_SQL).bind(address, plan.user_id, stamp, stamp, stamp, *guard))
    if plan.relinked_from is not None:
        statements.append(db.prepare(_REVOKE_OTHERS_SQL).bind(stamp, address, plan.user_id, *guard))
    payload: dict[str, Any] = {
        "wallet_address": address,
        "chain_id": row.chain_id,
        "wallet_challenge_id": row.id,
        "user_id": plan.user_id,
        "signature_type": signature_type,
        "verified_at": stamp,
        "new_user": plan.new_user,
    }
    if plan.relinked_from is not None:
        payload["relinked_from_user_id"] = plan.relinked_from
    statements.append(
        event_statement(
            db, "wallet.verified", payload, now, user_id=plan.user_id, guard_sql=_WIN_GUARD, guard_params=guard
        )
    )
    statements.append(db.prepare(_WIN_UPDATE_SQL).bind(stamp, plan.user_id, signature_type, *guard))
    results = await db.batch(statements)
    return results[-1].changes == 1
