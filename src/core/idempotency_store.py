"""Idempotency-key store: the key's lookup, its claim (committed inside the action's own write batch), its answer."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from core.auth import Caller
from core.clock import format_time
from db.port import Database, QueryResult, Statement

# How many expired keys one scheduled run deletes at most.
EXPIRE_BATCH = 1000


@dataclass(frozen=True)
class StoredKey:
    """A claimed key: the request it was claimed for, and its answer once stored.

    A claim commits with the action's write, so a row always means "this action happened"; the answer
    (response_body) is written after the response and may be missing after a crash: resource_id then
    says what the action acted on, so the answer can be rebuilt from it.
    """

    request_hash: str
    response_status: int | None
    response_body: str | None
    resource_id: str | None
    created_at: str


def lookup_statement(db: Database, caller: Caller, key: str) -> Statement:
    """The caller's row for `key`; `caller` may be the auth lookup's subquery, so it rides in that batch."""
    return db.prepare(
        # caller.sql is this module's own SQL (a bound parameter or the API-key subquery), never input.
        "SELECT request_hash, response_status, response_body, resource_id, created_at FROM idempotency_keys"  # noqa: S608
        f" WHERE user_id = {caller.sql} AND idempotency_key = ?"
    ).bind(*caller.params, key)


def stored_from(result: QueryResult) -> StoredKey | None:
    if not result.results:
        return None
    row = result.results[0]
    status = row["response_status"]
    return StoredKey(
        request_hash=row["request_hash"],
        response_status=int(status) if status is not None else None,
        response_body=row["response_body"],
        resource_id=row["resource_id"],
        created_at=row["created_at"],
    )


async def load(db: Database, user_id: str, key: str) -> StoredKey | None:
    return stored_from(await lookup_statement(db, Caller.user(user_id), key).all())


def claim_statements(
    db: Database,
    *,
    user_id: str,
    key: str,
    route: str,
    request_hash: str,
    status: int,
    resource_id: str | None,
    now: datetime,
    expired_before: datetime,
) -> list[Statement]:
    """Statements that claim `key` in the batch that writes the action: an expired row of the key goes first,
    then the INSERT, which a live claim of the same key refuses (PRIMARY KEY) and so rolls the action back."""
    return [
        db.prepare("DELETE FROM idempotency_keys WHERE user_id = ? AND idempotency_key = ? AND created_at < ?").bind(
            user_id, key, format_time(expired_before)
        ),
        db.prepare(
            "INSERT INTO idempotency_keys"
            " (user_id, idempotency_key, route, request_hash, response_status, resource_id, created_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)"
        ).bind(user_id, key, route, request_hash, status, resource_id, format_time(now)),
    ]


def answer_statement(db: Database, user_id: str, key: str, request_hash: str, body: str) -> Statement:
    """Store the answer of a claimed key (written after the response: a crash before it loses only the bytes)."""
    return db.prepare(
        "UPDATE idempotency_keys SET response_body = ?"
        " WHERE user_id = ? AND idempotency_key = ? AND request_hash = ? AND response_body IS NULL"
    ).bind(body, user_id, key, request_hash)


async def delete_expired(db: Database, expired_before: datetime, limit: int = EXPIRE_BATCH) -> int:
    """Delete up to `limit` keys claimed before `expired_before`; returns how many went."""
    result = await (
        db.prepare(
            "DELETE FROM idempotency_keys WHERE rowid IN"
            " (SELECT rowid FROM idempotency_keys WHERE created_at < ? ORDER BY created_at LIMIT ?)"
        )
        .bind(format_time(expired_before), limit)
        .run()
    )
    return result.changes
