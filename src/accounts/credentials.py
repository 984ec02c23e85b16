"""Who is asking, from the database's side: API keys and wallet sessions checked against their rows."""

from __future__ import annotations

import hmac
from collections.abc import Callable, Sequence
from datetime import datetime

from accounts import store
from accounts.store import SessionState
from core.auth import (
    API_KEY_PREFIX,
    SESSION_PREFIX,
    Caller,
    Principal,
    bearer_token,
    hash_api_key,
    verify_session,
)
from core.clock import parse_time, unix_seconds
from core.config import Env
from core.errors import ApiError
from db.port import Database, QueryResult, Statement

Extra = Callable[[Caller], Sequence[Statement]]


def _wallet_moved(state: SessionState, principal: Principal) -> bool:
    """Re-linking a wallet to another user revokes the sessions it gave its old owner, for good.

    A session whose wallet has no row is not revoked: no re-link ever happened to it.
    """
    if state.wallet_owner is None:
        return False
    if state.wallet_owner != principal.user_id:
        return True
    # Owned again after a round trip (A → B → A): sessions from before the latest link stay revoked.
    return bool(state.linked_at) and unix_seconds(parse_time(state.linked_at or "")) > (principal.issued_at or 0)


async def _lookup(
    db: Database, lookup: Statement, extra: Extra | None, caller: Caller
) -> tuple[QueryResult, tuple[QueryResult, ...]]:
    """The credential's row, and the route's reads run in the same batch (one round trip either way)."""
    results = await db.batch([lookup, *(extra(caller) if extra is not None else ())])
    return results[0], tuple(results[1:])


async def resolve_principal(
    env: Env, db: Database, authorization: str, now: datetime, extra: Extra | None = None
) -> Principal | None:
    """None when no credentials were sent; 401 E9006 when they were sent but are not valid.

    `extra` builds statements (reads) that run in the lookup's batch; their results come back on
    Principal.preloaded, for a user's API key or session only (admin and anonymous callers read nothing).
    """
    if not authorization.strip():
        return None
    token = bearer_token(authorization)
    if token is None:
        raise ApiError("E9006", "Use 'Authorization: Bearer <token>'")
    if not token.isascii():
        # Every token this API issues is ASCII; other bytes would make compare_digest raise TypeError.
        raise ApiError("E9006")
    admin_token = env.get("ADMIN_TOKEN")
    if admin_token and hmac.compare_digest(token.encode(), admin_token.encode()):
        return Principal("admin")
    if token.startswith(API_KEY_PREFIX):
        key_hash = hash_api_key(token)
        found, preloaded = await _lookup(
            db, store.api_key_statement(db, key_hash), extra, Caller(store.API_KEY_USER_SQL, (key_hash,))
        )
        user_id = store.api_key_user_from(found)
        if user_id is None:
            raise ApiError("E9006")
        return Principal("api_key", user_id, preloaded=preloaded)
    if token.startswith(SESSION_PREFIX):
        principal = verify_session(env, token, now)
        # A session is stateless: a validly signed one can outlive its user (deleted, or a restored database),
        # or its wallet's link to that user. One round trip answers both.
        statement = store.session_state_statement(db, principal.wallet_address, principal.user_id)
        found, preloaded = await _lookup(db, statement, extra, Caller.user(principal.user_id or ""))
        state = store.session_state_from(found)
        if state is None:
            raise ApiError("E9006")
        if _wallet_moved(state, principal):
            raise ApiError("E9006", "Session revoked: its wallet was linked to another account since")
        return Principal("session", principal.user_id, principal.wallet_address, principal.issued_at, preloaded)
    raise ApiError("E9006")
