"""User and API-key storage: create users, issue keys (shown once, stored hashed), read and edit profiles.

`users.email` and `users.phone` hold *verified* contacts only (pending ones live in accounts.contacts), so
everything that finds or notifies a user by them can trust them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from core.auth import hash_api_key, new_api_key
from core.clock import format_time
from core.errors import ApiError
from core.ids import new_id
from db.port import Database, QueryResult, Statement

# Columns PATCH /me may write directly: a contact only to clear it (a new one is a pending claim).
PROFILE_FIELDS = ("email", "phone", "display_name")
CONTACT_COLUMNS = {"email": "email", "phone": "phone"}


@dataclass(frozen=True)
class IssuedKey:
    user_id: str
    api_key: str


def insert_user_statement(db: Database, user_id: str, now: datetime, **profile: Any) -> Statement:
    stamp = format_time(now)
    return db.prepare(
        "INSERT INTO users (id, email, phone, display_name, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?)"
    ).bind(user_id, profile.get("email"), profile.get("phone"), profile.get("display_name"), stamp, stamp)


async def get_user(db: Database, user_id: str) -> dict[str, Any] | None:
    return await db.prepare("SELECT * FROM users WHERE id = ?").bind(user_id).first()


async def find_user_by_email(db: Database, email: str) -> dict[str, Any] | None:
    """The user who *proved* this email (or was given it by an operator); a pending claim never matches."""
    return await db.prepare("SELECT * FROM users WHERE email = ?").bind(email).first()


async def issue_api_key(
    db: Database,
    now: datetime,
    *,
    user_id: str | None = None,
    email: str | None = None,
    display_name: str | None = None,
    phone: str | None = None,
) -> IssuedKey:
    """A key for an existing user (by id or verified email), or for a new user when neither names one.

    Contacts given here come from an operator, who vouches for them: they are stored as verified.
    """
    statements: list[Statement] = []
    if user_id is not None:
        if await get_user(db, user_id) is None:
            raise ApiError("E9008", "User not found", {"field": "user_id"})
    elif email is not None and (existing := await find_user_by_email(db, email)) is not None:
        user_id = existing["id"]
    else:
        user_id = new_id()
        statements.append(insert_user_statement(db, user_id, now, email=email, phone=phone, display_name=display_name))
    api_key = new_api_key()
    statements.append(
        db.prepare("INSERT INTO api_keys (id, user_id, key_hash, key_prefix, created_at) VALUES (?, ?, ?, ?, ?)").bind(
            new_id(), user_id, hash_api_key(api_key), api_key[:8], format_time(now)
        )
    )
    await db.batch(statements)
    return IssuedKey(user_id, api_key)


async def wallets_of(db: Database, user_id: str) -> list[str]:
    return wallets_from(await wallets_statement(db, user_id).all())


def user_statement(db: Database, user_id: str) -> Statement:
    return db.prepare("SELECT * FROM users WHERE id = ?").bind(user_id)


def wallets_statement(db: Database, user_id: str) -> Statement:
    return db.prepare("SELECT address FROM wallets WHERE user_id = ? ORDER BY address").bind(user_id)


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
