"""Auth: operator-issued API keys (hashed at rest), /me, session tokens, and the 401/403 codes."""

from __future__ import annotations

import hashlib
import sqlite3
from datetime import timedelta

import pytest

from core.auth import issue_session, verify_session
from core.config import Env
from core.errors import ApiError
from tests.conftest import ADMIN_TOKEN, HMAC_SECRET


async def test_admin_issues_key_for_new_user_and_key_works(client, db_path):
    response = await client.post(
        "/admin/api-keys", json={"email": "Ana@Example.com", "display_name": "Ana"}, token=ADMIN_TOKEN
    )
    assert response.status == 201
    body = response.json()
    assert body["api_key"].startswith("thk_") and len(body["api_key"]) > 40
    me = await client.get("/me", token=body["api_key"])
    assert me.status == 200
    assert me.json()["id"] == body["user_id"]
    assert me.json()["email"] == "ana@example.com"
    # Stored only as a hash.
    with sqlite3.connect(db_path) as connection:
        stored = connection.execute("SELECT key_hash, key_prefix FROM api_keys").fetchall()
    assert stored == [(hashlib.sha256(body["api_key"].encode()).hexdigest(), body["api_key"][:8])]
    for stored_file in db_path.parent.glob(db_path.name + "*"):  # the database and its WAL
        assert body["api_key"].encode() not in stored_file.read_bytes()


async def test_admin_issues_second_key_for_existing_user(client, make_user):
    user_id, _ = await make_user(email="bo@example.com")
    by_id = await client.post("/admin/api-keys", json={"user_id": user_id}, token=ADMIN_TOKEN)
    by_email = await client.post("/admin/api-keys", json={"email": "bo@example.com"}, token=ADMIN_TOKEN)
    assert by_id.json()["user_id"] == by_email.json()["user_id"] == user_id
    unknown = await client.post("/admin/api-keys", json={"user_id": "nope"}, token=ADMIN_TOKEN)
    assert unknown.status == 404


@pytest.mark.parametrize(
    ("headers", "status", "code"),
    [
        ({}, 401, "E9005"),
        ({"authorization": "Bearer wrong-token"}, 401, "E9006"),
        ({"authorization": "Basic abc"}, 401, "E9006"),
        ({"authorization": "Bearer thk_forged"}, 401, "E9006"),
    ],
)
async def test_admin_endpoint_refuses_missing_or_bad_credentials(client, headers, status, code):
    response = await client.post("/admin/api-keys", json={}, headers=headers)
    assert (response.status, response.error_code) == (status, code)


async def test_user_key_cannot_issue_keys(client, make_user):
    _, api_key = await make_user()
    response = await client.post("/admin/api-keys", json={}, token=api_key)
    assert (response.status, response.error_code) == (403, "E9007")


async def test_admin_endpoint_without_admin_token_configured(client, env_vars):
    env_vars["ADMIN_TOKEN"] = ""
    response = await client.post("/admin/api-keys", json={}, token="")
    assert response.status == 401


async def test_me_requires_auth(client):
    assert (await client.get("/me")).error_code == "E9005"
    assert (await client.get("/me", token="thk_" + "x" * 43)).error_code == "E9006"


async def test_patch_me(client, make_user):
    _, api_key = await make_user(phone="+14155550100")
    response = await client.patch(
        "/me", json={"email": "new@example.com", "phone": "+14155550123", "display_name": "N"}, token=api_key
    )
    assert response.status == 200
    body = response.json()
    # display_name at once; new contacts only pending (no provider here, so no code could be sent).
    assert {k: body[k] for k in ("email", "phone", "display_name")} == {
        "email": None, "phone": "+14155550100", "display_name": "N",
    }  # fmt: skip
    assert body["pending_email"]["value"] == "new@example.com"
    assert body["pending_phone"]["value"] == "+14155550123"
    assert body["pending_email"]["code_delivery"] == "UNAVAILABLE"
    cleared = await client.patch("/me", json={"phone": None}, token=api_key)
    assert cleared.json()["phone"] is None and cleared.json()["pending_phone"] is None
    assert cleared.json()["pending_email"]["value"] == "new@example.com"


@pytest.mark.parametrize(
    "patch",
    [
        {"phone": "555-1234"},
        {"email": "not-an-email"},
        {"display_name": ""},
        {"role": "admin"},
        {"display_name": "x" * 101},
    ],
)
async def test_patch_me_validation(client, make_user, patch):
    _, api_key = await make_user()
    response = await client.patch("/me", json=patch, token=api_key)
    assert (response.status, response.error_code) == (400, "E9004")
    assert response.json()["error"]["details"]["fields"][0]["field"] == next(iter(patch))


async def test_patch_me_email_taken_is_just_pending(client, make_user):
    # Never "already in use": that would tell anyone which addresses have accounts (issue 12, item 4).
    await make_user(email="taken@example.com")
    _, api_key = await make_user()
    response = await client.patch("/me", json={"email": "taken@example.com"}, token=api_key)
    assert response.status == 200
    assert (response.json()["email"], response.json()["pending_email"]["value"]) == (None, "taken@example.com")


async def test_session_token_round_trip_and_tampering(clock):
    env = Env({"HMAC_SECRET": HMAC_SECRET})
    token, _ = issue_session(env, "user-1", "0xabc", clock.now())
    assert token.startswith("ths_")
    principal = verify_session(env, token, clock.now())
    assert (principal.user_id, principal.wallet_address, principal.kind) == ("user-1", "0xabc", "session")
    payload, mac = token[4:].split(".")
    for forged in (f"ths_{payload}.{mac[:-2]}AA", f"ths_{payload[:-2]}AA.{mac}", "ths_nodot", "ths_."):
        with pytest.raises(ApiError) as raised:
            verify_session(env, forged, clock.now())
        assert raised.value.code == "E9006"
    other = Env({"HMAC_SECRET": "another-secret-that-is-long-enough-000"})
    with pytest.raises(ApiError):
        verify_session(other, token, clock.now())
    with pytest.raises(ApiError) as expired:
        verify_session(env, token, clock.now() + timedelta(days=2))
    assert expired.value.code == "E9006"


async def test_session_bearer_reaches_me_until_it_expires(client, make_user, services, clock):
    user_id, _ = await make_user()
    token, _ = issue_session(services.env, user_id, "0x" + "1" * 40, clock.now())
    assert (await client.get("/me", token=token)).json()["id"] == user_id
    clock.advance(hours=25)
    response = await client.get("/me", token=token)
    assert (response.status, response.error_code) == (401, "E9006")


async def test_missing_hmac_secret_is_clear_500_naming_variable(client, make_user, env_vars, clock):
    user_id, _ = await make_user()
    token, _ = issue_session(Env({"HMAC_SECRET": HMAC_SECRET}), user_id, "0x" + "1" * 40, clock.now())
    env_vars["HMAC_SECRET"] = "short"
    response = await client.get("/me", token=token)
    assert response.status == 500
    error = response.json()["error"]
    assert error["code"] == "E9001"
    assert "HMAC_SECRET" in error["message"]
    assert "short" not in response.text
