"""User and API-key storage: create users, issue keys (shown once, stored hashed), read and edit profiles."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from core.auth import hash_api_key, new_api_key
from core.clock import format_time
from core.errors import ApiError
from core.ids import new_id
from db.port import ConstraintError, Database, Statement

PROFILE_FIELDS = ("email", "phone", "display_name")


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
    return await db.prepare("SELECT * FROM users WHERE email = ?").bind(email).first()


async def issue_api_key(
    db: Database,
    now: datetime,
    *,
    user_id: str | None = None,
    email: str | None = None,
    display_name: str | None = None,
) -> IssuedKey:
    """A key for an existing user (by id or email), or for a new user when neither names one."""
    statements: list[Statement] = []
    if user_id is not None:
        if await get_user(db, user_id) is None:
            raise ApiError("E9008", "User not found", {"field": "user_id"})
    elif email is not None and (existing := await find_user_by_email(db, email)) is not None:
        user_id = existing["id"]
    else:
        user_id = new_id()
        statements.append(insert_user_statement(db, user_id, now, email=email, display_name=display_name))
    api_key = new_api_key()
    statements.append(
        db.prepare("INSERT INTO api_keys (id, user_id, key_hash, key_prefix, created_at) VALUES (?, ?, ?, ?, ?)").bind(
            new_id(), user_id, hash_api_key(api_key), api_key[:8], format_time(now)
        )
    )
    await db.batch(statements)
    return IssuedKey(user_id, api_key)


async def wallets_of(db: Database, user_id: str) -> list[str]:
    result = await db.prepare("SELECT address FROM wallets WHERE user_id = ? ORDER BY address").bind(user_id).all()
    return [row["address"] for row in result.results]


async def update_profile(db: Database, user_id: str, changes: dict[str, Any], now: datetime) -> None:
    fields = [name for name in PROFILE_FIELDS if name in changes]
    if not fields:
        return
    # Column names come from the fixed PROFILE_FIELDS tuple, never from input; values are bound.
    assignments = ", ".join(f"{name} = ?" for name in fields)
    sql = f"UPDATE users SET {assignments}, updated_at = ? WHERE id = ?"  # noqa: S608
    try:
        await db.prepare(sql).bind(*[changes[name] for name in fields], format_time(now), user_id).run()
    except ConstraintError:
        raise ApiError(
            "E9004",
            details={"fields": [{"field": "email", "message": "is already in use", "type": "unique"}]},
        ) from None
