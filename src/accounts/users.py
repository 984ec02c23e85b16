"""Users and API keys: issue keys (shown once, stored hashed) for new or existing users; SQL in accounts.store."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from accounts import store
from core.auth import hash_api_key, new_api_key
from core.errors import ApiError
from core.ids import new_id
from db.port import Database, Statement


@dataclass(frozen=True)
class IssuedKey:
    user_id: str
    api_key: str


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
        if await store.load_user(db, user_id) is None:
            raise ApiError("E9008", "User not found", {"field": "user_id"})
    elif email is not None and (existing := await store.find_user_by_email(db, email)) is not None:
        user_id = existing.id
    else:
        user_id = new_id()
        statements.append(
            store.insert_user_statement(db, user_id, now, email=email, phone=phone, display_name=display_name)
        )
    api_key = new_api_key()
    statements.append(store.insert_api_key_statement(db, new_id(), user_id, hash_api_key(api_key), api_key[:8], now))
    await db.batch(statements)
    return IssuedKey(user_id, api_key)


async def get_user(db: Database, user_id: str) -> dict[str, Any] | None:
    """The user's row as a dict (for callers outside accounts that still read it so); None when absent."""
    user = await store.load_user(db, user_id)
    return None if user is None else asdict(user)
