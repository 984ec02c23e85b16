"""accounts.credentials at its edges: schemes, blank headers, admin/API key/session lookups and wallet revocation."""

from __future__ import annotations

import sqlite3
from datetime import timedelta

import pytest

from accounts.credentials import _wallet_moved, resolve_principal
from accounts.store import SessionState
from core.auth import Caller, Principal, issue_session
from core.clock import format_time
from core.errors import ApiError
from tests.conftest import ADMIN_TOKEN

WALLET = "0x" + "ab" * 20
SCHEME_MESSAGE = "Use 'Authorization: Bearer <token>'"


def _who(db):
    """A route's read that names the caller (from the caller SQL it is given), and a log of the callers."""
    callers: list[Caller] = []

    def extra(caller: Caller):
        callers.append(caller)
        return [db.prepare(f"SELECT {caller.sql} AS who").bind(*caller.params)]

    return extra, callers


async def _resolve(services, header: str, extra=None, now=None):
    return await resolve_principal(services.env, services.db, header, now or services.clock.now(), extra)


async def _refused(services, header: str, extra=None, now=None) -> ApiError:
    with pytest.raises(ApiError) as raised:
        await _resolve(services, header, extra, now)
    assert (raised.value.code, raised.value.status) == ("E9006", 401)
    return raised.value


def _link(db_path, address: str, user_id: str, linked_at: str | None) -> None:
    with sqlite3.connect(db_path) as connection:
        connection.execute(
            "INSERT INTO wallets (address, user_id, first_verified_at, last_verified_at, linked_at)"
            " VALUES (?, ?, ?, ?, ?)",
            (address, user_id, "2026-01-01T00:00:00.000Z", "2026-01-01T00:00:00.000Z", linked_at),
        )


@pytest.mark.parametrize("header", ["", " ", "\t", "  \n  ", "\r\n"])
async def test_blank_headers_are_anonymous(services, header):
    assert await _resolve(services, header) is None


@pytest.mark.parametrize("scheme", ["Basic", "Token", "Digest", "Bearer:", "thk_"])
async def test_a_valid_api_key_under_another_scheme_is_401(services, make_user, scheme):
    _, api_key = await make_user()
    error = await _refused(services, f"{scheme} {api_key}")
    assert error.message == SCHEME_MESSAGE
    assert (await _resolve(services, f"Bearer {api_key}")).kind == "api_key"


@pytest.mark.parametrize("header", ["Bearer", "Bearer ", "Bearer    ", "bearer\t", "Basic", ADMIN_TOKEN])
async def test_no_bearer_token_is_401_with_the_scheme_hint(services, header):
    assert (await _refused(services, header)).message == SCHEME_MESSAGE


async def test_non_ascii_tokens_are_401_not_500(services):
    # "ths_abc.✓": a non-ASCII MAC would make the constant-time comparison raise TypeError.
    for token in ("thk_ü", ADMIN_TOKEN + "é", "ths_✓.x", "ths_abc.✓", "ü"):
        assert (await _refused(services, f"Bearer {token}")).message == "Invalid or expired credentials"


async def test_the_admin_token_is_admin_and_reads_nothing(services):
    extra, callers = _who(services.db)
    for header in (f"Bearer {ADMIN_TOKEN}", f"  bearer   {ADMIN_TOKEN}  "):
        principal = await _resolve(services, header, extra)
        assert principal == Principal("admin")
        assert principal.preloaded == ()
    assert callers == []
    for near in (ADMIN_TOKEN[:-1], ADMIN_TOKEN + "x", ADMIN_TOKEN.upper()):
        await _refused(services, f"Bearer {near}")


async def test_no_admin_token_configured_means_no_admin(services, env_vars):
    env_vars["ADMIN_TOKEN"] = ""
    await _refused(services, f"Bearer {ADMIN_TOKEN}")
    with pytest.raises(ApiError):
        await _resolve(services, "Bearer x")


async def test_an_api_key_resolves_with_its_reads_in_the_same_batch(services, make_user):
    user_id, api_key = await make_user()
    extra, callers = _who(services.db)
    principal = await _resolve(services, f"Bearer {api_key}", extra)
    assert principal == Principal("api_key", user_id)
    assert [result.results for result in principal.preloaded] == [[{"who": user_id}]]
    # The caller is a subquery on the key's hash: the user id isn't known before the database answers.
    assert len(callers) == 1 and callers[0].sql.startswith("(SELECT user_id FROM api_keys")
    plain = await _resolve(services, f"Bearer {api_key}")
    assert plain == Principal("api_key", user_id) and plain.preloaded == ()


async def test_unknown_and_revoked_api_keys_are_401(services, make_user, db_path):
    _, api_key = await make_user()
    error = await _refused(services, "Bearer thk_" + "A" * 43)
    assert error.message == "Invalid or expired credentials"
    with sqlite3.connect(db_path) as connection:
        connection.execute("UPDATE api_keys SET revoked_at = '2026-11-24T11:00:00.000Z'")
    await _refused(services, f"Bearer {api_key}")


@pytest.mark.parametrize("token", ["abc", "thx_abc", "THK_abc", "THS_abc", "ths", "thk"])
async def test_tokens_of_no_known_kind_are_401(services, token):
    assert (await _refused(services, f"Bearer {token}")).message == "Invalid or expired credentials"


async def test_a_session_resolves_with_its_reads_in_the_same_batch(services, make_user):
    user_id, _ = await make_user()
    now = services.clock.now()
    token, _ = issue_session(services.env, user_id, WALLET, now)
    extra, callers = _who(services.db)
    principal = await _resolve(services, f"Bearer {token}", extra)
    assert principal == Principal("session", user_id, WALLET, int(now.timestamp()))
    assert [result.results for result in principal.preloaded] == [[{"who": user_id}]]
    assert callers == [Caller("?", (user_id,))]


async def test_a_session_of_a_user_that_is_gone_is_401(services):
    token, _ = issue_session(services.env, "no-such-user", WALLET, services.clock.now())
    assert (await _refused(services, f"Bearer {token}")).message == "Invalid or expired credentials"


async def test_an_expired_session_is_401_at_its_last_second(services, make_user, env_vars):
    env_vars["SESSION_TTL_SECONDS"] = "60"
    user_id, _ = await make_user()
    now = services.clock.now()
    token, _ = issue_session(services.env, user_id, WALLET, now)
    assert await _resolve(services, f"Bearer {token}", now=now + timedelta(seconds=59))
    error = await _refused(services, f"Bearer {token}", now=now + timedelta(seconds=60))
    assert error.message == "Session expired"


async def test_a_wallet_linked_to_another_user_revokes_the_session(services, make_user, db_path):
    user_id, _ = await make_user()
    other_id, _ = await make_user()
    now = services.clock.now()
    _link(db_path, WALLET, other_id, format_time(now - timedelta(days=1)))
    token, _ = issue_session(services.env, user_id, WALLET, now)
    error = await _refused(services, f"Bearer {token}")
    assert error.message == "Session revoked: its wallet was linked to another account since"


@pytest.mark.parametrize(
    ("linked", "revoked"),
    [(timedelta(seconds=-1), False), (timedelta(0), False), (timedelta(seconds=1), True), (None, False)],
)
async def test_a_relink_to_the_same_user_revokes_only_sessions_from_before_it(
    services, make_user, db_path, linked, revoked
):
    user_id, _ = await make_user()
    now = services.clock.now()
    _link(db_path, WALLET, user_id, None if linked is None else format_time(now + linked))
    token, _ = issue_session(services.env, user_id, WALLET, now)
    if revoked:
        assert (await _refused(services, f"Bearer {token}")).message.startswith("Session revoked")
    else:
        assert (await _resolve(services, f"Bearer {token}")).user_id == user_id


def test_wallet_moved_rules() -> None:
    issued = 1_795_521_600  # 2026-11-24T12:00:00Z
    session = Principal("session", "u1", WALLET, issued)
    assert not _wallet_moved(SessionState(None, None), session)
    assert not _wallet_moved(SessionState(None, "2030-01-01T00:00:00.000Z"), session)
    # Any other owner, whether its id sorts before or after the session's user.
    assert _wallet_moved(SessionState("u2", None), session)
    assert _wallet_moved(SessionState("u0", None), session)
    assert _wallet_moved(SessionState("", None), session)
    assert _wallet_moved(SessionState("u2", "2020-01-01T00:00:00.000Z"), session)
    assert not _wallet_moved(SessionState("u1", None), session)
    assert not _wallet_moved(SessionState("u1", ""), session)
    assert not _wallet_moved(SessionState("u1", "2026-11-24T12:00:00.000Z"), session)
    assert _wallet_moved(SessionState("u1", "2026-11-24T12:00:01.000Z"), session)
    # A principal without issued_at counts as issued at 0: any link after the epoch revokes it, one at it doesn't.
    assert _wallet_moved(SessionState("u1", "1970-01-01T00:00:01.000Z"), Principal("session", "u1", WALLET))
    assert not _wallet_moved(SessionState("u1", "1970-01-01T00:00:00.000Z"), Principal("session", "u1", WALLET))
