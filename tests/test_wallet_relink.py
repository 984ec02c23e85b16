"""Issue 12 item 2: re-linking a wallet to another user revokes the old owner's verifications and wallet sessions."""

from __future__ import annotations

from typing import Any

from tests.test_wallet_support import (
    KEY_ALICE,
    KEY_BOB,
    address_of,
    create,
    sign,
    verify,
    wallet_env,  # noqa: F401 (autouse fixture)
)

ALICE = address_of(KEY_ALICE).lower()


async def link(client, key: str = KEY_ALICE, token: str | None = None) -> dict[str, Any]:
    """Prove the key's wallet (with `token`: for that bearer's user) and return the verify body."""
    challenge = await create(client, key=key, token=token)
    response = await verify(client, challenge["challenge_id"], sign(challenge["message"], key), token=token)
    assert response.status == 200, response.text
    return response.json()


async def solo_with_wallet_check(client, token: str) -> str:
    """A SOLO challenge whose creator must have ALICE's wallet verified (no funds checks: no RPC needed)."""
    created = await client.post(
        "/challenges",
        json={
            "mode": "SOLO",
            "title": "wallet gated",
            "gatekeeper_requirements": {
                "creator": {"wallet_address": ALICE, "network": "eth-mainnet", "funds_checks": []}
            },
        },
        token=token,
    )
    assert created.status == 201, created.text
    return created.json()["id"]


async def test_old_owners_verification_no_longer_satisfies_a_gatekeeper_check(client, make_user, clock):
    victim_id, victim_key = await make_user()
    _, thief_key = await make_user()
    assert (await link(client, token=victim_key))["user_id"] == victim_id
    gated = await solo_with_wallet_check(client, victim_key)
    # The wallet's key signs for another account: the wallet moves there.
    await link(client, token=thief_key)

    confirmed = await client.post(f"/challenges/{gated}/confirm", token=victim_key)

    assert (confirmed.status, confirmed.error_code) == (409, "E4020")
    assert confirmed.json()["error"]["details"]["pending"] == ["creator"]
    # Proving the key again (a fresh verification, after the move) is what makes it count again.
    clock.advance(seconds=5)
    await link(client, token=victim_key)
    again = await client.post(f"/challenges/{gated}/confirm", token=victim_key)
    assert again.status == 200, again.text
    assert again.json()["requirements"]["creator"]["wallet_status"] == "VERIFIED"


async def test_relink_marks_only_the_old_owners_verifications_revoked(client, services, make_user):
    _, first_key = await make_user()
    second_id, second_key = await make_user()
    await link(client, token=first_key)
    await link(client, token=first_key)
    await link(client, token=second_key)

    rows = (
        await services.db.prepare(
            "SELECT verified_user_id, revoked_at FROM wallet_challenges WHERE wallet_address = ? ORDER BY rowid"
        )
        .bind(ALICE)
        .all()
    ).results

    stamp = "2026-11-24T12:00:00.000Z"
    assert [row["revoked_at"] for row in rows] == [stamp, stamp, None]
    assert rows[2]["verified_user_id"] == second_id


async def test_relink_revokes_the_old_owners_sessions_for_that_wallet(client, make_user, clock):
    # A wallet-only user: its session is its only credential.
    first = await link(client)
    other_wallet = await link(client, key=KEY_BOB, token=first["session_token"])
    assert (await client.get("/me", token=first["session_token"])).status == 200
    _, new_owner_key = await make_user()

    moved = await link(client, token=new_owner_key)

    stale = await client.get("/me", token=first["session_token"])
    assert (stale.status, stale.error_code) == (401, "E9006")
    assert (await client.get("/challenges", token=first["session_token"])).status == 401
    # The new owner's session works, and the old owner's session for another wallet is untouched.
    assert (await client.get("/me", token=moved["session_token"])).json()["id"] == moved["user_id"]
    assert (await client.get("/me", token=other_wallet["session_token"])).json()["id"] == first["user_id"]

    # Taking the wallet back later does not revive sessions from before the move.
    clock.advance(seconds=5)
    back = await link(client, token=other_wallet["session_token"])
    assert back["user_id"] == first["user_id"]
    assert (await client.get("/me", token=first["session_token"])).status == 401
    assert (await client.get("/me", token=back["session_token"])).status == 200
    assert (await client.get("/me", token=moved["session_token"])).status == 401


async def test_verifying_again_for_the_same_owner_keeps_its_sessions(client, clock):
    first = await link(client)
    clock.advance(seconds=5)
    again = await link(client)  # anonymous: the wallet stays with its user
    assert again["user_id"] == first["user_id"]
    assert (await client.get("/me", token=first["session_token"])).status == 200
