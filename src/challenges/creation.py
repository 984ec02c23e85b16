"""Creating a challenge: per-mode validation with the mode's own error codes, then one atomic insert batch."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from accounts.users import get_user
from chain.address import InvalidAddress, normalize_address
from chain.networks import UnsupportedNetwork, network_by_name
from challenges import modes, store
from challenges.models import ChallengeCreate, SideRequirements
from challenges.store import Aggregate
from core import flags
from core.clock import format_time, parse_time
from core.config import Env
from core.errors import ApiError
from core.ids import is_uuid4, new_id
from db.port import Database, Statement
from relay.outbox import event_statement

ACCEPT_TIMEOUT = (60, 7 * 24 * 3600, 15 * 60)
RESPONSE_TIMEOUT = (5 * 60, 30 * 24 * 3600, 24 * 3600)
DISPUTE_TIMEOUT = (3600, 30 * 24 * 3600, 72 * 3600)


def field_error(field: str, message: str, code: str = "E9004") -> ApiError:
    return ApiError(code, details={"fields": [{"field": field, "message": message, "type": "value_error"}]})


def _address(value: str, field: str, code: str = "E9004") -> str:
    try:
        return normalize_address(value)
    except InvalidAddress as error:
        raise field_error(field, str(error), code) from None


def _future_time(value: str | None, field: str, now: datetime) -> str | None:
    if value is None:
        return None
    try:
        moment = parse_time(value)
    except ValueError:
        raise field_error(field, "must be an RFC 3339 timestamp with a timezone") from None
    if moment <= now:
        raise field_error(field, "must be in the future")
    return format_time(moment)


def _positive_amount(value: str, field: str) -> str:
    if not value.isascii() or not value.isdigit() or len(value) > 78 or int(value) <= 0 or int(value) >= 2**256:
        raise ApiError(
            "E4003",
            details={
                "fields": [
                    {
                        "field": field,
                        "message": "must be a positive decimal string of base units below 2^256",
                        "type": "amount",
                    }
                ]
            },
        )
    return str(int(value))


def _timeout(value: int | None, bounds: tuple[int, int, int], field: str) -> int:
    low, high, default = bounds
    if value is None:
        return default
    if value <= 0:
        raise field_error(field, "must be a positive number of seconds", "E3004")
    if not low <= value <= high:
        raise ApiError(
            "E4010",
            details={
                "fields": [{"field": field, "message": f"must be between {low} and {high} seconds", "type": "range"}],
                "min": low,
                "max": high,
            },
        )
    return value


def _side(side: SideRequirements, prefix: str, env: Env) -> dict[str, Any]:
    wallet = _address(side.wallet_address, f"{prefix}.wallet_address")
    try:
        network = network_by_name(side.network, env)
    except UnsupportedNetwork:
        raise ApiError(
            "E2002",
            details={"fields": [{"field": f"{prefix}.network", "message": "unsupported network", "type": "network"}]},
        ) from None
    checks = []
    for index, check in enumerate(side.funds_checks):
        where = f"{prefix}.funds_checks.{index}"
        token = None
        if check.asset_type == "ERC20":
            if not check.token_address:
                raise ApiError(
                    "E2003",
                    details={
                        "fields": [
                            {"field": f"{where}.token_address", "message": "required for ERC20", "type": "missing"}
                        ]
                    },
                )
            token = _address(check.token_address, f"{where}.token_address", "E2007")
        elif check.token_address:
            raise field_error(f"{where}.token_address", "must be omitted for NATIVE checks")
        checks.append(
            {
                "asset_type": check.asset_type,
                "token_address": token,
                "min_balance": check.min_balance,
                "currency_symbol": check.currency_symbol,
            }
        )
    return {"wallet_address": wallet, "network": network.name, "funds_checks": checks}


async def _counterparty(
    db: Database, body: ChallengeCreate, creator_id: str, known_users: set[str] | None
) -> tuple[str | None, str | None]:
    user_id, wallet = body.counterparty_user_id, body.counterparty_wallet
    if body.counterparty is not None:
        if body.counterparty.startswith("0x"):
            wallet = wallet or body.counterparty
        elif is_uuid4(body.counterparty):
            user_id = user_id or body.counterparty
        else:
            raise field_error("counterparty", "must be a user id or a wallet address")
    if wallet is not None:
        wallet = _address(wallet, "counterparty_wallet")
    if user_id is not None:
        if user_id == creator_id:
            raise field_error("counterparty_user_id", "cannot be the creator")
        # `known_users` came with the auth lookup's batch (no round trip of its own); else read it here.
        if known_users is not None:
            exists = user_id in known_users
        else:
            exists = is_uuid4(user_id) and await get_user(db, user_id) is not None
        if not is_uuid4(user_id) or not exists:
            raise field_error("counterparty_user_id", "no such user")
    return user_id, wallet


async def create(
    db: Database,
    env: Env,
    now: datetime,
    creator_id: str,
    body: ChallengeCreate,
    known_users: set[str] | None = None,
    challenge_id: str | None = None,
) -> tuple[str, Aggregate | None]:
    """Validate and insert; returns the new challenge id and its aggregate, read back by the inserting batch.

    Nothing is written when anything is invalid. `challenge_id` is the new challenge's id when the caller
    needs it before the write (an Idempotency-Key's claim names it); otherwise a new one.
    """
    mode = body.mode
    if mode not in modes.MODES:
        raise ApiError(
            "E3001",
            details={"fields": [{"field": "mode", "message": f"must be one of {list(modes.MODES)}", "type": "enum"}]},
        )
    for needed_mode, flag in ((modes.FIRE, flags.FIRE_MODE), (modes.ENFORCED, flags.ENFORCED_MODE)):
        if mode == needed_mode and not env.flag(flag, creator_id):
            raise ApiError("E9010", f"{mode} challenges are disabled ({flag})", {"flag": flag})
    requirements = body.gatekeeper_requirements
    named = body.counterparty or body.counterparty_user_id or body.counterparty_wallet
    if mode == modes.SOLO and (named or (requirements and requirements.counterparty)):
        raise ApiError("E3002")
    cp_user, cp_wallet = await _counterparty(db, body, creator_id, known_users)
    if mode == modes.SOLO:
        if body.fire_config or body.enforced_config:
            raise field_error("fire_config" if body.fire_config else "enforced_config", "not allowed for SOLO")
    elif not (cp_user or cp_wallet):
        raise ApiError("E3023")
    if mode != modes.FIRE and body.fire_config:
        raise field_error("fire_config", f"not allowed for {mode}")
    if mode != modes.ENFORCED and body.enforced_config:
        raise field_error("enforced_config", f"not allowed for {mode}")

    sides: dict[str, dict[str, Any]] = {}
    if mode == modes.GATEKEEPER and (
        requirements is None or requirements.creator is None or requirements.counterparty is None
    ):
        raise ApiError(
            "E3022",
            details={
                "fields": [
                    {
                        "field": "gatekeeper_requirements",
                        "message": "creator and counterparty requirements are required",
                        "type": "missing",
                    }
                ]
            },
        )
    if requirements is not None:
        if requirements.creator is not None:
            sides["CREATOR"] = _side(requirements.creator, "gatekeeper_requirements.creator", env)
        if requirements.counterparty is not None:
            sides["COUNTERPARTY"] = _side(requirements.counterparty, "gatekeeper_requirements.counterparty", env)
            if cp_wallet and cp_wallet != sides["COUNTERPARTY"]["wallet_address"]:
                raise field_error("counterparty_wallet", "differs from the counterparty's required wallet")
    expires_at = _future_time(body.expires_at, "expires_at", now)
    resolution_due_at = _future_time(body.resolution_due_at, "resolution_due_at", now)

    challenge_id = challenge_id or new_id()
    stamp = format_time(now)
    statements: list[Statement] = [
        store.challenge_insert(
            db,
            challenge_id=challenge_id,
            mode=mode,
            title=body.title,
            description=body.description,
            creator_user_id=creator_id,
            counterparty_user_id=cp_user,
            counterparty_wallet=cp_wallet,
            expires_at=expires_at,
            resolution_due_at=resolution_due_at,
            stamp=stamp,
        )
    ]
    statements += _mode_config(db, env, challenge_id, body)
    for side_name, side in sides.items():
        statements.append(
            store.wallet_requirement_insert(db, challenge_id, side_name, side["wallet_address"], side["network"])
        )
        for position, check in enumerate(side["funds_checks"]):
            statements.append(
                store.funds_requirement_insert(
                    db,
                    requirement_id=new_id(),
                    challenge_id=challenge_id,
                    side=side_name,
                    position=position,
                    wallet_address=side["wallet_address"],
                    network=side["network"],
                    asset_type=check["asset_type"],
                    token_address=check["token_address"],
                    min_balance=check["min_balance"],
                    currency_symbol=check["currency_symbol"],
                )
            )
    statements.append(store.created_history_insert(db, challenge_id, f"user:{creator_id}", stamp))
    statements.append(
        event_statement(
            db,
            "challenge.created",
            {"challenge_id": challenge_id, "mode": mode, "status": "DRAFT"},
            now,
            challenge_id=challenge_id,
            user_id=creator_id,
        )
    )
    _, created = await store.commit(db, statements, challenge_id)
    return challenge_id, created


def _mode_config(db: Database, env: Env, challenge_id: str, body: ChallengeCreate) -> list[Statement]:
    if body.mode == modes.FIRE:
        fire = body.fire_config
        if fire is None:
            raise ApiError("E3003")
        bond = _positive_amount(fire.honesty_bond_amount, "fire_config.honesty_bond_amount")
        oracle = fire.oracle
        if fire.resolution_strategy == "ORACLE" and oracle is None:
            raise field_error("fire_config.oracle", "required for the ORACLE strategy")
        oracle_values: tuple[str | None, ...] = (None, None, None, None, None, None)
        if oracle is not None:
            feed = _address(oracle.feed_address, "fire_config.oracle.feed_address")
            try:
                network_by_name(oracle.network, env)
            except UnsupportedNetwork:
                raise ApiError(
                    "E2002",
                    details={
                        "fields": [
                            {"field": "fire_config.oracle.network", "message": "unsupported network", "type": "network"}
                        ]
                    },
                ) from None
            try:
                resolve_after = format_time(parse_time(oracle.resolve_after))
            except ValueError:
                raise field_error("fire_config.oracle.resolve_after", "must be an RFC 3339 timestamp") from None
            oracle_values = (oracle.network, feed, oracle.comparator, oracle.threshold, resolve_after, resolve_after)
        network, feed_address, comparator, threshold, resolve_at, next_check_at = oracle_values
        return [
            store.fire_config_insert(
                db,
                challenge_id=challenge_id,
                honesty_bond_amount=bond,
                currency_code=fire.currency_code,
                resolution_strategy=fire.resolution_strategy,
                oracle_network=network,
                oracle_feed_address=feed_address,
                oracle_comparator=comparator,
                oracle_threshold=threshold,
                oracle_resolve_after=resolve_at,
                oracle_next_check_at=next_check_at,
            )
        ]
    if body.mode == modes.ENFORCED:
        config = body.enforced_config
        accept = _timeout(
            config.accept_timeout_seconds if config else None, ACCEPT_TIMEOUT, "enforced_config.accept_timeout_seconds"
        )
        response = _timeout(
            config.response_timeout_seconds if config else None,
            RESPONSE_TIMEOUT,
            "enforced_config.response_timeout_seconds",
        )
        dispute = _timeout(
            config.dispute_timeout_seconds if config else None,
            DISPUTE_TIMEOUT,
            "enforced_config.dispute_timeout_seconds",
        )
        stake = currency = None
        if config is not None and config.stake_amount is not None:
            stake = _positive_amount(config.stake_amount, "enforced_config.stake_amount")
            if not config.currency_code:
                raise field_error("enforced_config.currency_code", "required with stake_amount")
            currency = config.currency_code
        return [
            store.enforced_config_insert(
                db,
                challenge_id=challenge_id,
                accept_timeout_seconds=accept,
                response_timeout_seconds=response,
                dispute_timeout_seconds=dispute,
                stake_amount=stake,
                currency_code=currency,
            )
        ]
    return []
