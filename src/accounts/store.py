"""Accounts store: users, API keys, wallets (read side), contact claims and code sends — all their SQL, typed records.

Statements take a core.auth.Caller where a route may run them in the auth lookup's batch (see core.auth.Preload).
`users.email` and `users.phone` hold *verified* contacts only (pending ones are contact_claims rows), so
everything that finds or notifies a user by them can trust them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from accounts import contacts
from accounts.contacts import Channel, Delivery, PendingClaim
from core.auth import Caller
from core.clock import format_time
from db.port import Database, QueryResult, Statement, select_in

# Columns PATCH /me may write directly: a contact only to clear it (a new one is a pending claim).
PROFILE_FIELDS = ("email", "phone", "display_name")
CONTACT_COLUMNS = {"email": "email", "phone": "phone"}


@dataclass(frozen=True)
class User:
    """A user's row; email and phone are verified contacts only."""

    id: str
    email: str | None
    phone: str | None
    display_name: str | None
    created_at: str
    updated_at: str

    def contact(self, channel: str) -> str | None:
        return self.email if CONTACT_COLUMNS[channel] == "email" else self.phone


_USER_COLUMNS = "id, email, phone, display_name, created_at, updated_at"


def user_from(result: QueryResult) -> User | None:
    if not result.results:
        return None
    row = result.results[0]
    return User(
        id=row["id"],
        email=row["email"],
        phone=row["phone"],
        display_name=row["display_name"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


def insert_user_statement(db: Database, user_id: str, now: datetime, **profile: Any) -> Statement:
    stamp = format_time(now)
    return db.prepare(
        "INSERT INTO users (id, email, phone, display_name, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?)"
    ).bind(user_id, profile.get("email"), profile.get("phone"), profile.get("display_name"), stamp, stamp)


async def load_user(db: Database, user_id: str) -> User | None:
    return user_from(await user_statement(db, Caller.user(user_id)).all())


async def find_user_by_email(db: Database, email: str) -> User | None:
    """The user who *proved* this email (or was given it by an operator); a pending claim never matches."""
    return user_from(await db.prepare(f"SELECT {_USER_COLUMNS} FROM users WHERE email = ?").bind(email).all())  # noqa: S608


@dataclass(frozen=True)
class Contact:
    """A user's verified email address and phone number (either may be missing): whom a notification reaches."""

    id: str
    email: str | None
    phone: str | None


async def contacts_of(db: Database, user_ids: Iterable[str]) -> dict[str, Contact]:
    """The verified contacts of each existing user among `user_ids`, in one round trip (chunked statements)."""
    rows = await select_in(db, "SELECT id, email, phone FROM users WHERE id IN ({marks})", user_ids)
    return {row["id"]: Contact(row["id"], row["email"], row["phone"]) for row in rows}


# -- credentials: the auth lookup's own statements (accounts.credentials runs them) -------------------------

# The user of an unrevoked API key, as a subquery: a route's reads can name the caller before it is known.
API_KEY_USER_SQL = "(SELECT user_id FROM api_keys WHERE key_hash = ? AND revoked_at IS NULL)"


@dataclass(frozen=True)
class SessionState:
    """What a session token needs checked against the database: its wallet's current owner, and since when."""

    wallet_owner: str | None
    linked_at: str | None


def api_key_statement(db: Database, key_hash: str) -> Statement:
    return db.prepare("SELECT user_id FROM api_keys WHERE key_hash = ? AND revoked_at IS NULL").bind(key_hash)


def api_key_user_from(result: QueryResult) -> str | None:
    return result.results[0]["user_id"] if result.results else None


def session_state_statement(db: Database, wallet_address: str | None, user_id: str | None) -> Statement:
    """The session's user (no row: gone) and the current owner of its wallet, with when that owner got it."""
    return db.prepare(
        "SELECT w.user_id AS wallet_owner, w.linked_at FROM users AS u "
        "LEFT JOIN wallets AS w ON w.address = ? WHERE u.id = ?"
    ).bind(wallet_address, user_id)


def session_state_from(result: QueryResult) -> SessionState | None:
    if not result.results:
        return None
    row = result.results[0]
    return SessionState(wallet_owner=row["wallet_owner"], linked_at=row["linked_at"])


def insert_api_key_statement(
    db: Database, key_id: str, user_id: str, key_hash: str, key_prefix: str, now: datetime
) -> Statement:
    return db.prepare(
        "INSERT INTO api_keys (id, user_id, key_hash, key_prefix, created_at) VALUES (?, ?, ?, ?, ?)"
    ).bind(key_id, user_id, key_hash, key_prefix, format_time(now))


async def wallets_of(db: Database, user_id: str) -> list[str]:
    return wallets_from(await wallets_statement(db, Caller.user(user_id)).all())


def user_statement(db: Database, caller: Caller) -> Statement:
    # caller.sql is one of core.auth's fixed fragments, never input; its values are bound.
    return db.prepare(f"SELECT {_USER_COLUMNS} FROM users WHERE id = {caller.sql}").bind(*caller.params)  # noqa: S608


def wallets_statement(db: Database, caller: Caller) -> Statement:
    return db.prepare(f"SELECT address FROM wallets WHERE user_id = {caller.sql} ORDER BY address").bind(  # noqa: S608
        *caller.params
    )


def wallets_from(result: QueryResult) -> list[str]:
    return [row["address"] for row in result.results]


def profile_update_statement(db: Database, user_id: str, changes: dict[str, Any], now: datetime) -> Statement | None:
    """display_name, and contacts being cleared (None); None when there is nothing to write."""
    fields = [name for name in PROFILE_FIELDS if name in changes]
    if any(changes[name] is not None for name in fields if name in CONTACT_COLUMNS):
        # A contact is only ever set through verify_contact_statement, after its owner proved it.
        raise ValueError("new contacts must be verified first")
    if not fields:
        return None
    # Column names come from the fixed PROFILE_FIELDS tuple, never from input; values are bound.
    assignments = ", ".join(f"{name} = ?" for name in fields)
    sql = f"UPDATE users SET {assignments}, updated_at = ? WHERE id = ?"  # noqa: S608
    return db.prepare(sql).bind(*[changes[name] for name in fields], format_time(now), user_id)


def verify_contact_statement(
    db: Database,
    user_id: str,
    channel: str,
    value: str,
    now: datetime,
    *,
    guard_sql: str,
    guard_params: tuple[Any, ...],
) -> Statement:
    """Make a proved contact the user's own, only if `guard_sql` holds and (emails) no one else has it verified."""
    column = CONTACT_COLUMNS[channel]
    # Only verified emails are unique; phones never were. The NOT EXISTS keeps the UNIQUE constraint from
    # turning a conflict into a failed batch, so the caller can tell it apart.
    unique = " AND NOT EXISTS (SELECT 1 FROM users AS other WHERE other.email = ? AND other.id <> ?)"
    sql = f"UPDATE users SET {column} = ?, updated_at = ? WHERE id = ? AND EXISTS ({guard_sql})"  # noqa: S608
    params: list[Any] = [value, format_time(now), user_id, *guard_params]
    if column == "email":
        sql += unique
        params += [value, user_id]
    return db.prepare(sql).bind(*params)


# ---- contact claims and code sends: reads


_CLAIM_COLUMNS = "channel, value, code_hash, attempts, delivery, expires_at"


def claims_statement(db: Database, caller: Caller) -> Statement:
    # caller.sql is one of core.auth's fixed fragments, never input; its values are bound.
    return db.prepare(
        f"SELECT {_CLAIM_COLUMNS} FROM contact_claims WHERE user_id = {caller.sql} ORDER BY channel"  # noqa: S608
    ).bind(*caller.params)


def user_sends_statement_for(db: Database, caller: Caller, now: datetime) -> Statement:
    """user_sends_statement for a caller whose id may not be known yet (it runs in the auth batch)."""
    sql = f"SELECT COUNT(*) AS sent, MIN(sent_at) AS oldest FROM contact_code_sends WHERE user_id = {caller.sql}"  # noqa: S608
    return db.prepare(sql + " AND sent_at > ?").bind(*caller.params, format_time(now - contacts.USER_WINDOW))


def claims_from(result: QueryResult) -> dict[str, PendingClaim]:
    return {row["channel"]: _claim(row) for row in result.results}


def _claim(row: dict[str, Any]) -> PendingClaim:
    return PendingClaim(
        channel=row["channel"],
        value=row["value"],
        code_hash=row["code_hash"],
        attempts=int(row["attempts"]),
        delivery=row["delivery"],
        expires_at=row["expires_at"],
    )


def user_sends_statement(db: Database, user_id: str, now: datetime) -> Statement:
    """How many codes this user had sent in the last hour, and when the oldest of them went."""
    return user_sends_statement_for(db, Caller.user(user_id), now)


def address_sends_statement(db: Database, hashed_address: str, now: datetime) -> Statement:
    """How many codes this address received in the last day (from any user), and when the oldest went."""
    return db.prepare(
        "SELECT COUNT(*) AS sent, MIN(sent_at) AS oldest FROM contact_code_sends WHERE address_hash = ? AND sent_at > ?"
    ).bind(hashed_address, format_time(now - contacts.ADDRESS_WINDOW))


# ---- contact claims and code sends: writes


def upsert_claim_statement(
    db: Database,
    user_id: str,
    channel: Channel,
    value: str,
    hashed_code: str,
    delivery: Delivery,
    now: datetime,
) -> Statement:
    """A new claim, or a fresh code for the user's claim on this channel (its attempts start over)."""
    stamp = format_time(now)
    return db.prepare(
        "INSERT INTO contact_claims (user_id, channel, value, code_hash, attempts, attempt_id, delivery, expires_at,"
        " created_at) VALUES (?, ?, ?, ?, 0, NULL, ?, ?, ?)"
        " ON CONFLICT (user_id, channel) DO UPDATE SET value = excluded.value, code_hash = excluded.code_hash,"
        " attempts = 0, attempt_id = NULL, delivery = excluded.delivery, expires_at = excluded.expires_at,"
        " created_at = excluded.created_at"
    ).bind(user_id, channel, value, hashed_code, delivery, format_time(now + contacts.CODE_TTL), stamp)


def delete_claim_statement(db: Database, user_id: str, channel: Channel) -> Statement:
    return db.prepare("DELETE FROM contact_claims WHERE user_id = ? AND channel = ?").bind(user_id, channel)


def log_send_statements(
    db: Database, send_id: str, user_id: str, hashed_address: str, now: datetime
) -> list[Statement]:
    """Record a send and drop this user's and this address's entries that no window needs any more."""
    stamp = format_time(now)
    return [
        db.prepare("INSERT INTO contact_code_sends (id, user_id, address_hash, sent_at) VALUES (?, ?, ?, ?)").bind(
            send_id, user_id, hashed_address, stamp
        ),
        db.prepare("DELETE FROM contact_code_sends WHERE (user_id = ? OR address_hash = ?) AND sent_at < ?").bind(
            user_id, hashed_address, format_time(now - contacts.SEND_LOG_RETENTION)
        ),
    ]


def spend_attempt_statement(
    db: Database, user_id: str, channel: Channel, hashed_code: str, attempt_id: str, now: datetime
) -> Statement:
    """Counts one attempt, atomically and before the code is honoured: parallel guesses cannot exceed the limit.

    It matches only the claim that was read (same code hash), still unexpired and with attempts left.
    """
    return db.prepare(
        "UPDATE contact_claims SET attempts = attempts + 1, attempt_id = ?"
        " WHERE user_id = ? AND channel = ? AND code_hash = ? AND attempts < ? AND expires_at > ?"
    ).bind(attempt_id, user_id, channel, hashed_code, contacts.MAX_ATTEMPTS, format_time(now))


def attempt_guard(user_id: str, channel: Channel, attempt_id: str, value: str) -> tuple[str, tuple[Any, ...]]:
    """SQL true only when this request's attempt was the one counted (see spend_attempt_statement)."""
    return (
        "SELECT 1 FROM contact_claims WHERE user_id = ? AND channel = ? AND attempt_id = ? AND value = ?",
        (user_id, channel, attempt_id, value),
    )


def finish_claim_statement(db: Database, user_id: str, channel: Channel, attempt_id: str) -> Statement:
    """A claim whose right code was entered is used up, whether or not the address could be taken."""
    return db.prepare("DELETE FROM contact_claims WHERE user_id = ? AND channel = ? AND attempt_id = ?").bind(
        user_id, channel, attempt_id
    )
