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


async def _rows_for(db: Database, sql: str, ids: list[str]) -> list[dict[str, Any]]:
    """Rows of several challenges in one query: `sql` ends with 'challenge_id IN ({marks})'."""
    if not ids:
        return []
    marks = ", ".join("?" for _ in ids)
    # Only placeholders are interpolated; the ids are bound (a page is at most 100, D1's parameter limit).
    return (await db.prepare(sql.format(marks=marks)).bind(*ids).all()).results


async def _requirements_many(db: Database, ids: list[str]) -> dict[str, dict[str, dict[str, Any]]]:
    sides = await _rows_for(
        db,
        "SELECT challenge_id, side, wallet_address, network, wallet_status FROM challenge_wallet_requirements"
        " WHERE challenge_id IN ({marks}) ORDER BY side",
        ids,
    )
    result: dict[str, dict[str, dict[str, Any]]] = {challenge_id: {} for challenge_id in ids}
    if not sides:
        return result
    checks = await _rows_for(
        db,
        "SELECT challenge_id, side, asset_type, token_address, min_balance, currency_symbol, status, checked_at"
        " FROM funds_requirements WHERE challenge_id IN ({marks}) ORDER BY side, position",
        ids,
    )
    for side in sides:
        result[side["challenge_id"]][side["side"].lower()] = {
            "wallet_address": side["wallet_address"],
            "network": side["network"],
            "wallet_status": side["wallet_status"],
            "funds_checks": [],
        }
    for check in checks:
        check = dict(check)
        challenge_id, side = check.pop("challenge_id"), check.pop("side").lower()
        result[challenge_id][side]["funds_checks"].append(check)
    return result


async def requirements(db: Database, challenge_id: str) -> dict[str, dict[str, Any]]:
    """Each side's wallet requirement and funds checks with PASSED/FAILED (never a balance)."""
    return (await _requirements_many(db, [challenge_id]))[challenge_id]


async def _stakes_many(db: Database, ids: list[str]) -> dict[str, list[dict[str, Any]]]:
    rows = await _rows_for(
        db,
        "SELECT challenge_id, id, user_id, type, amount, currency_code, status FROM stakes"
        " WHERE challenge_id IN ({marks}) ORDER BY created_at, id",
        ids,
    )
    result: dict[str, list[dict[str, Any]]] = {challenge_id: [] for challenge_id in ids}
    for row in rows:
        row = dict(row)
        result[row.pop("challenge_id")].append(row)
    return result


async def _settlements_many(db: Database, ids: list[str]) -> dict[str, dict[str, str] | None]:
    rows = await _rows_for(
        db,
        "SELECT challenge_id, entry_type, amount FROM ledger_entries"
        " WHERE challenge_id IN ({marks}) AND entry_type LIKE 'SLASH_%'",
        ids,
    )
    totals: dict[str, dict[str, int]] = {}
    for entry in rows:
        parts = totals.setdefault(entry["challenge_id"], {"winner": 0, "treasury": 0, "burn": 0, "provers": 0})
        parts[entry["entry_type"].removeprefix("SLASH_").lower()] += int(entry["amount"])
    return {
        challenge_id: (
            {name: str(amount) for name, amount in totals[challenge_id].items()} if challenge_id in totals else None
        )
        for challenge_id in ids
    }


async def _configs_many(db: Database, table: str, ids: list[str]) -> dict[str, dict[str, Any]]:
    if not ids:
        return {}
    rows = await _rows_for(db, f"SELECT * FROM {table} WHERE challenge_id IN ({{marks}})", ids)  # noqa: S608
    configs = {}
    for row in rows:
        row = dict(row)
        row.pop("oracle_next_check_at", None)
        configs[row.pop("challenge_id")] = row
    return configs


def proposal(challenge: dict[str, Any]) -> dict[str, Any] | None:
    """The standing outcome proposal as both parties see it (SPEC §7 `resolve`), or None."""
    if not challenge["proposed_outcome"]:
        return None
    announced = challenge["proposed_at"] is not None
    return {
        "outcome": challenge["proposed_outcome"],
        "proposed_by": challenge["proposed_by"],
        "proposed_at": challenge["proposed_at"],
        # ENFORCED only (the others have no dispute deadline); it ran from the announcement.
        "dispute_window_ends_at": challenge["dispute_deadline"] if announced else None,
        "event_id": challenge["proposal_event_id"],
    }


async def serialize_many(db: Database, challenges: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The API view of challenges, loading what they need in a fixed number of queries (not per challenge)."""
    ids = [challenge["id"] for challenge in challenges]
    requirements_by_id = await _requirements_many(db, ids)
    stakes_by_id = await _stakes_many(db, ids)
    settlements = await _settlements_many(db, ids)
    fire = await _configs_many(db, "fire_configs", [c["id"] for c in challenges if c["mode"] == "FIRE"])
    enforced = await _configs_many(db, "enforced_configs", [c["id"] for c in challenges if c["mode"] == "ENFORCED"])
    return [
        {
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
            "requirements": requirements_by_id[challenge["id"]],
            "stakes": stakes_by_id[challenge["id"]],
            "outcome": challenge["outcome"],
            "proposed_outcome": proposal(challenge),
            "settlement": settlements[challenge["id"]],
            "fire_config": fire.get(challenge["id"]),
            "enforced_config": enforced.get(challenge["id"]),
        }
        for challenge in challenges
    ]


async def serialize(db: Database, challenge: dict[str, Any]) -> dict[str, Any]:
    return (await serialize_many(db, [challenge]))[0]


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
    """The caller's own challenges (as creator or counterparty), newest first, keyset-paginated.

    One indexed, limited branch per way of being a party, merged: an OR across the three would scan
    the whole table and sort it, which gets slower with every challenge ever created.
    """
    filters = ""
    filter_params: list[Any] = []
    if status is not None:
        filters += " AND status = ?"
        filter_params.append(status)
    if mode is not None:
        filters += " AND mode = ?"
        filter_params.append(mode)
    if cursor is not None:
        created_at, challenge_id = decode_cursor(cursor)
        filters += " AND (created_at < ? OR (created_at = ? AND id < ?))"
        filter_params += [created_at, created_at, challenge_id]
    page = limit + 1
    branches = (
        ("creator_user_id = ?", [user_id]),
        ("counterparty_user_id = ?", [user_id]),
        ("counterparty_wallet IN (SELECT address FROM wallets WHERE user_id = ?)", [user_id]),
    )
    # Only fixed condition strings are joined; every value is bound.
    parts = [
        f"SELECT * FROM (SELECT * FROM challenges WHERE {party}{filters} ORDER BY created_at DESC, id DESC LIMIT ?)"  # noqa: S608
        for party, _ in branches
    ]
    params: list[Any] = []
    for _, party_params in branches:
        params += [*party_params, *filter_params, page]
    sql = " UNION ".join(parts) + " ORDER BY created_at DESC, id DESC LIMIT ?"
    rows = (await db.prepare(sql).bind(*params, page).all()).results
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
