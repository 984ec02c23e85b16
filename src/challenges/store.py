"""Reading challenges: load, who may see them, serialize for the API, list with cursors, history."""

from __future__ import annotations

import base64
import json
from typing import Any

from core.auth import Principal
from core.errors import ApiError
from core.ids import is_uuid4
from db.port import Database

DEADLINE_COLUMNS = (
    "accept_deadline",
    "verification_deadline",
    "response_deadline",
    "dispute_deadline",
    "resolution_due_at",
)


async def load(db: Database, challenge_id: str) -> dict[str, Any] | None:
    if not is_uuid4(challenge_id):
        return None
    return await db.prepare("SELECT * FROM challenges WHERE id = ?").bind(challenge_id).first()


async def user_wallets(db: Database, user_id: str) -> set[str]:
    result = await db.prepare("SELECT address FROM wallets WHERE user_id = ?").bind(user_id).all()
    return {row["address"] for row in result.results}


async def role_of(db: Database, challenge: dict[str, Any], principal: Principal | None) -> str | None:
    """CREATOR, COUNTERPARTY, ADMIN or None. An invited wallet's verified owner counts as the counterparty."""
    if principal is None:
        return None
    if principal.is_admin:
        return "ADMIN"
    if principal.user_id == challenge["creator_user_id"]:
        return "CREATOR"
    if challenge["counterparty_user_id"] is not None:
        return "COUNTERPARTY" if principal.user_id == challenge["counterparty_user_id"] else None
    wallet = challenge["counterparty_wallet"]
    if wallet and principal.user_id and wallet in await user_wallets(db, principal.user_id):
        return "COUNTERPARTY"
    return None


async def load_visible(db: Database, challenge_id: str, principal: Principal | None) -> tuple[dict[str, Any], str]:
    """The challenge and the caller's role; 404 E3010 for strangers, so existence never leaks."""
    challenge = await load(db, challenge_id)
    if challenge is None:
        raise ApiError("E3010")
    role = await role_of(db, challenge, principal)
    if role is None:
        raise ApiError("E3010")
    return challenge, role


async def requirements(db: Database, challenge_id: str) -> dict[str, dict[str, Any]]:
    sides = (
        await db.prepare(
            "SELECT side, wallet_address, network, wallet_status FROM challenge_wallet_requirements "
            "WHERE challenge_id = ? ORDER BY side"
        )
        .bind(challenge_id)
        .all()
    )
    checks = (
        await db.prepare(
            "SELECT id, side, wallet_address, network, asset_type, token_address, min_balance, currency_symbol, status,"
            " checked_at FROM funds_requirements WHERE challenge_id = ? ORDER BY side, position"
        )
        .bind(challenge_id)
        .all()
    )
    result: dict[str, dict[str, Any]] = {}
    for side in sides.results:
        result[side["side"].lower()] = {
            "wallet_address": side["wallet_address"],
            "network": side["network"],
            "wallet_status": side["wallet_status"],
            "funds_checks": [],
        }
    for check in checks.results:
        result[check["side"].lower()]["funds_checks"].append(
            {
                "asset_type": check["asset_type"],
                "token_address": check["token_address"],
                "min_balance": check["min_balance"],
                "currency_symbol": check["currency_symbol"],
                "status": check["status"],
                "checked_at": check["checked_at"],
            }
        )
    return result


async def funds_requirement_rows(db: Database, challenge_id: str) -> list[dict[str, Any]]:
    result = (
        await db.prepare("SELECT * FROM funds_requirements WHERE challenge_id = ? ORDER BY side, position")
        .bind(challenge_id)
        .all()
    )
    return result.results


async def stakes(db: Database, challenge_id: str) -> list[dict[str, Any]]:
    result = (
        await db.prepare(
            "SELECT id, user_id, type, amount, currency_code, status FROM stakes WHERE challenge_id = ? ORDER BY created_at"
        )
        .bind(challenge_id)
        .all()
    )
    return result.results


async def settlement(db: Database, challenge_id: str) -> dict[str, str] | None:
    result = (
        await db.prepare(
            "SELECT entry_type, amount FROM ledger_entries WHERE challenge_id = ? AND entry_type LIKE 'SLASH_%'"
        )
        .bind(challenge_id)
        .all()
    )
    if not result.results:
        return None
    parts = {"winner": 0, "treasury": 0, "burn": 0, "provers": 0}
    for entry in result.results:
        parts[entry["entry_type"].removeprefix("SLASH_").lower()] += int(entry["amount"])
    return {name: str(amount) for name, amount in parts.items()}


async def mode_config(db: Database, challenge: dict[str, Any]) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    fire = enforced = None
    if challenge["mode"] == "FIRE":
        fire = await db.prepare("SELECT * FROM fire_configs WHERE challenge_id = ?").bind(challenge["id"]).first()
        if fire is not None:
            fire.pop("challenge_id")
            fire.pop("oracle_next_check_at", None)
    elif challenge["mode"] == "ENFORCED":
        enforced = (
            await db.prepare("SELECT * FROM enforced_configs WHERE challenge_id = ?").bind(challenge["id"]).first()
        )
        if enforced is not None:
            enforced.pop("challenge_id")
    return fire, enforced


async def serialize(db: Database, challenge: dict[str, Any]) -> dict[str, Any]:
    """The API view of a challenge: requirements with PASSED/FAILED only, never a balance."""
    fire, enforced = await mode_config(db, challenge)
    return {
        "id": challenge["id"],
        "mode": challenge["mode"],
        "status": challenge["status"],
        "title": challenge["title"],
        "description": challenge["description"],
        "creator_user_id": challenge["creator_user_id"],
        "counterparty_user_id": challenge["counterparty_user_id"],
        "counterparty_wallet": challenge["counterparty_wallet"],
        "expires_at": challenge["expires_at"],
        "deadlines": {name.removesuffix("_deadline"): challenge[name] for name in DEADLINE_COLUMNS},
        "created_at": challenge["created_at"],
        "updated_at": challenge["updated_at"],
        "intent_locked_at": challenge["intent_locked_at"],
        "completed_at": challenge["completed_at"],
        "initiator_hash": challenge["initiator_hash"],
        "counter_hash": challenge["counter_hash"],
        "final_hash": challenge["final_hash"],
        "requirements": await requirements(db, challenge["id"]),
        "stakes": await stakes(db, challenge["id"]),
        "outcome": challenge["outcome"],
        "settlement": await settlement(db, challenge["id"]),
        "fire_config": fire,
        "enforced_config": enforced,
    }


def encode_cursor(created_at: str, challenge_id: str) -> str:
    raw = json.dumps([created_at, challenge_id], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def decode_cursor(cursor: str) -> tuple[str, str]:
    bad = ApiError(
        "E9004",
        "Invalid cursor",
        {"fields": [{"field": "cursor", "message": "is not a cursor from a previous page", "type": "cursor"}]},
    )
    try:
        created_at, challenge_id = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (ValueError, TypeError):
        raise bad from None
    if not isinstance(created_at, str) or not is_uuid4(challenge_id):
        raise bad
    return created_at, challenge_id


async def list_for_user(
    db: Database, user_id: str, *, status: str | None, mode: str | None, limit: int, cursor: str | None
) -> tuple[list[dict[str, Any]], str | None]:
    """The caller's own challenges (as creator or counterparty), newest first, keyset-paginated."""
    conditions = [
        "(creator_user_id = ? OR counterparty_user_id = ?"
        " OR counterparty_wallet IN (SELECT address FROM wallets WHERE user_id = ?))"
    ]
    params: list[Any] = [user_id, user_id, user_id]
    if status is not None:
        conditions.append("status = ?")
        params.append(status)
    if mode is not None:
        conditions.append("mode = ?")
        params.append(mode)
    if cursor is not None:
        created_at, challenge_id = decode_cursor(cursor)
        conditions.append("(created_at < ? OR (created_at = ? AND id < ?))")
        params += [created_at, created_at, challenge_id]
    # Only fixed condition strings are joined; every value is bound.
    sql = f"SELECT * FROM challenges WHERE {' AND '.join(conditions)} ORDER BY created_at DESC, id DESC LIMIT ?"  # noqa: S608
    rows = (await db.prepare(sql).bind(*params, limit + 1).all()).results
    next_cursor = encode_cursor(rows[limit - 1]["created_at"], rows[limit - 1]["id"]) if len(rows) > limit else None
    return rows[:limit], next_cursor


async def history(db: Database, challenge_id: str) -> list[dict[str, Any]]:
    result = (
        await db.prepare(
            "SELECT from_status, to_status, actor, reason, created_at FROM challenge_status_history "
            "WHERE challenge_id = ? ORDER BY id"
        )
        .bind(challenge_id)
        .all()
    )
    return result.results


async def events(db: Database, challenge_id: str) -> list[dict[str, Any]]:
    result = (
        await db.prepare(
            "SELECT id, type, created_at, payload FROM events WHERE challenge_id = ? ORDER BY created_at, rowid"
        )
        .bind(challenge_id)
        .all()
    )
    return [
        {"id": row["id"], "type": row["type"], "created_at": row["created_at"], "data": json.loads(row["payload"])}
        for row in result.results
    ]
