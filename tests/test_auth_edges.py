"""core.auth at its edges: exact token format, expiry to the second, valid MACs over bad payloads, bearer parsing."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta

import pytest

from core import auth
from core.auth import (
    Caller,
    Principal,
    bearer_token,
    hash_api_key,
    issue_session,
    new_api_key,
    preloaded_or_read,
    require_admin,
    require_user,
    route_preload,
    verify_session,
)
from core.config import Env
from core.errors import ApiError
from db.port import QueryResult

SECRET = "edge-hmac-secret-0123456789abcdef-0123"
ENV = Env({"HMAC_SECRET": SECRET})
NOW = datetime(2026, 11, 24, 12, 0, 0, tzinfo=UTC)
T = int(NOW.timestamp())


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _signed(payload: str, secret: str = SECRET) -> str:
    """A token whose MAC is right for `payload`, whatever the payload holds (as only the secret's holder can)."""
    mac = hmac.new(secret.encode(), b"session.v1." + payload.encode(), hashlib.sha256).digest()
    return f"ths_{payload}.{_b64(mac)}"


def _claims(**claims: object) -> str:
    return _b64(json.dumps(claims, separators=(",", ":")).encode())


def _refused(token: str, now: datetime = NOW) -> ApiError:
    with pytest.raises(ApiError) as raised:
        verify_session(ENV, token, now)
    assert (raised.value.code, raised.value.status) == ("E9006", 401)
    return raised.value


def test_constants() -> None:
    assert (auth.API_KEY_PREFIX, auth.SESSION_PREFIX) == ("thk_", "ths_")
    assert timedelta(hours=24) == auth.SESSION_TTL
    assert auth.PRELOAD == "preload"


def test_api_key_hash_is_sha256_hex_and_keys_are_prefixed_and_random() -> None:
    assert hash_api_key("thk_abc") == "ad688cd3f309e4c2ed8423e0d1e5dd42022febabb5660ac62bfa470a83f0b4d0"
    key = new_api_key()
    assert key.startswith("thk_")
    # 32 random bytes as unpadded URL-safe base64: 43 characters after the prefix.
    assert len(key) == 4 + 43
    assert new_api_key() != key


def test_issued_token_is_exactly_the_documented_format() -> None:
    token, expires_at = issue_session(ENV, "user-1", "0xabc", NOW)
    payload = _claims(u="user-1", w="0xabc", iat=T, exp=T + 86_400)
    assert token == _signed(payload)
    assert expires_at == "2026-11-25T12:00:00.000Z"


def test_session_ttl_comes_from_the_environment() -> None:
    env = Env({"HMAC_SECRET": SECRET, "SESSION_TTL_SECONDS": "60"})
    token, expires_at = issue_session(env, "u", "0x1", NOW)
    assert token == _signed(_claims(u="u", w="0x1", iat=T, exp=T + 60))
    assert expires_at == "2026-11-24T12:01:00.000Z"


def test_a_session_expires_at_its_exact_second() -> None:
    env = Env({"HMAC_SECRET": SECRET, "SESSION_TTL_SECONDS": "60"})
    token, _ = issue_session(env, "u", "0x1", NOW)
    last_moment = NOW + timedelta(seconds=59, microseconds=999_999)
    assert verify_session(env, token, last_moment) == Principal("session", "u", "0x1", T)
    assert verify_session(env, token, NOW - timedelta(days=1)).issued_at == T
    for late in (NOW + timedelta(seconds=60), NOW + timedelta(seconds=61)):
        with pytest.raises(ApiError) as raised:
            verify_session(env, token, late)
        assert (raised.value.code, raised.value.message) == ("E9006", "Session expired")


def test_verified_principal_carries_every_claim() -> None:
    principal = verify_session(ENV, _signed(_claims(u="user-9", w="0xdef", iat=T - 5, exp=T + 1)), NOW)
    assert principal == Principal("session", "user-9", "0xdef", T - 5)
    assert (principal.kind, principal.user_id, principal.wallet_address, principal.issued_at) == (
        "session",
        "user-9",
        "0xdef",
        T - 5,
    )
    assert principal.preloaded == ()
    assert not principal.is_admin


@pytest.mark.parametrize(
    "payload",
    [
        pytest.param(_b64(b"not json"), id="not-json"),
        pytest.param(_b64(b""), id="empty-json"),
        pytest.param(_b64(b"\xff\xfe\xfa"), id="not-utf8"),
        pytest.param("a", id="bad-base64-length"),
        pytest.param(_b64(b'["u", "w"]'), id="a-list"),
        pytest.param(_b64(b'"u"'), id="a-string"),
        pytest.param(_b64(b"7"), id="a-number"),
        pytest.param(_claims(w="0x1", iat=T, exp=T + 60), id="no-user"),
        pytest.param(_claims(u="u", iat=T, exp=T + 60), id="no-wallet"),
        pytest.param(_claims(u="u", w="0x1", iat=T), id="no-expiry"),
        pytest.param(_claims(u="u", w="0x1", exp=T + 60), id="no-issued-at"),
        pytest.param(_claims(u="u", w="0x1", iat=T, exp="soon"), id="expiry-text"),
        pytest.param(_claims(u="u", w="0x1", iat=T, exp=None), id="expiry-null"),
        pytest.param(_claims(u="u", w="0x1", iat=T, exp=[T]), id="expiry-list"),
        pytest.param(_claims(u="u", w="0x1", iat="then", exp=T + 60), id="issued-at-text"),
        pytest.param(_claims(u="u", w="0x1", iat={}, exp=T + 60), id="issued-at-object"),
        pytest.param(_b64(b'{"u":"u","w":"0x1","iat":1,"exp":NaN}'), id="expiry-nan"),
        pytest.param(_b64(b'{"u":"u","w":"0x1","iat":1,"exp":1e400}'), id="expiry-infinite"),
    ],
)
def test_a_valid_mac_over_a_malformed_payload_is_401_not_500(payload: str) -> None:
    error = _refused(_signed(payload))
    assert error.message == "Invalid or expired credentials"


@pytest.mark.parametrize(
    "token",
    ["ths_", "ths_.", "ths_payload", "ths_payload.", "ths_.mac", "", "ths_nodot"],
)
def test_missing_payload_or_mac_is_refused(token: str) -> None:
    _refused(token)


def test_a_mac_made_with_another_secret_or_for_another_payload_is_refused() -> None:
    payload = _claims(u="u", w="0x1", iat=T, exp=T + 60)
    _refused(_signed(payload, "another-secret-that-is-long-enough-000"))
    other = _signed(_claims(u="v", w="0x1", iat=T, exp=T + 60))
    _refused(f"ths_{payload}.{other.rpartition('.')[2]}")
    # The MAC covers the domain tag too: a plain HMAC of the payload is not a session MAC.
    plain = _b64(hmac.new(SECRET.encode(), payload.encode(), hashlib.sha256).digest())
    _refused(f"ths_{payload}.{plain}")


def test_padded_base64_payloads_still_verify() -> None:
    # Payload lengths of every residue mod 4 decode (the padding is restored before decoding).
    for user in ("u", "uu", "uuu", "uuuu"):
        principal = verify_session(ENV, _signed(_claims(u=user, w="0x1", iat=T, exp=T + 60)), NOW)
        assert principal.user_id == user


@pytest.mark.parametrize(
    ("header", "token"),
    [
        ("Bearer abc", "abc"),
        ("bearer abc", "abc"),
        ("BEARER abc", "abc"),
        ("  Bearer   abc  ", "abc"),
        ("Bearer a b", "a b"),
        ("Bearer\tabc", None),
        ("Basic abc", None),
        ("Token abc", None),
        ("Bearerabc", None),
        ("Bearer", None),
        ("Bearer ", None),
        ("Bearer    ", None),
        ("", None),
        ("   ", None),
        ("abc", None),
    ],
)
def test_bearer_token_parsing(header: str, token: str | None) -> None:
    assert bearer_token(header) == token


def test_principals_and_callers_are_frozen_values_that_ignore_preloaded_results() -> None:
    loaded = Principal("api_key", "u1", preloaded=(QueryResult(results=[{"secret": "row"}]),))
    assert loaded == Principal("api_key", "u1")
    assert hash(loaded) == hash(Principal("api_key", "u1"))
    assert "preloaded" not in repr(loaded) and "row" not in repr(loaded)
    assert repr(Principal("admin")) == "Principal(kind='admin', user_id=None, wallet_address=None, issued_at=None)"
    with pytest.raises(AttributeError):
        loaded.user_id = "u2"  # type: ignore[misc]
    caller = Caller("?", ("u1",))
    assert {caller, Caller.user("u1")} == {caller}
    with pytest.raises(AttributeError):
        caller.sql = "x"  # type: ignore[misc]


def test_caller_for_a_known_user_is_a_bound_parameter() -> None:
    assert Caller.user("u1") == Caller("?", ("u1",))


def test_route_preload_binds_the_request() -> None:
    assert route_preload(None, ENV, None, None, NOW) is None  # type: ignore[arg-type]
    seen = []

    def builder(env, db, request, now, caller):  # type: ignore[no-untyped-def]
        seen.append((env, db, request, now, caller))
        return ["statement"]

    bound = route_preload(builder, ENV, "db", "request", NOW)  # type: ignore[arg-type]
    assert bound is not None
    assert bound(Caller.user("u")) == ["statement"]
    assert seen == [(ENV, "db", "request", NOW, Caller("?", ("u",)))]


class _RecordingDb:
    def __init__(self) -> None:
        self.batches: list[list[object]] = []

    async def batch(self, statements: list[object]) -> list[QueryResult]:
        self.batches.append(statements)
        return [QueryResult(results=[{"n": index}]) for index, _ in enumerate(statements)]


async def test_preloaded_results_are_used_and_otherwise_read_in_one_batch() -> None:
    db = _RecordingDb()
    ready = (QueryResult(results=[{"x": 1}]),)
    principal = Principal("api_key", "u1", preloaded=ready)
    assert await preloaded_or_read(db, principal, lambda caller: [caller]) == list(ready)  # type: ignore[arg-type]
    assert db.batches == []
    read = await preloaded_or_read(db, Principal("session", "u2"), lambda caller: [caller, "second"])  # type: ignore[arg-type]
    assert db.batches == [[Caller("?", ("u2",)), "second"]]
    assert read == [QueryResult(results=[{"n": 0}]), QueryResult(results=[{"n": 1}])]
    await preloaded_or_read(db, Principal("admin"), lambda caller: [caller])  # type: ignore[arg-type]
    assert db.batches[-1] == [Caller("?", ("",))]


def test_require_user_and_admin() -> None:
    user = Principal("api_key", "u1")
    admin = Principal("admin")
    assert require_user(user) is user
    assert require_admin(admin) is admin
    assert admin.is_admin and not user.is_admin
    for check, principal, code, message in [
        (require_user, None, "E9005", "Authentication required"),
        (require_user, admin, "E9007", "This endpoint acts for a user; use a user's API key or session"),
        (require_admin, None, "E9005", "Authentication required"),
        (require_admin, user, "E9007", "Admin token required"),
        (require_admin, Principal("session", "u1", "0x1", T), "E9007", "Admin token required"),
    ]:
        with pytest.raises(ApiError) as raised:
            check(principal)  # type: ignore[operator]
        assert (raised.value.code, raised.value.message) == (code, message)
