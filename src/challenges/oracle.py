"""FIRE ORACLE resolution: after `resolve_after`, read the feed and apply the predicate (SPEC §9)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from chain.networks import UnsupportedNetwork, network_by_name
from chain.oracle import MalformedFeedAnswer, RoundData, latest_round
from chain.provider import build_rpc_client
from chain.rpc import RpcError
from challenges import lifecycle, modes, transitions
from challenges.transitions import Change
from core.clock import format_time, parse_time
from core.context import Services
from core.errors import ApiError

ORACLE_ACTOR = "system:oracle"
RETRY_SECONDS = 60
DEFAULT_MAX_AGE_SECONDS = 3600
BATCH_LIMIT = 20


async def config_of(services: Services, challenge_id: str) -> dict[str, Any] | None:
    return (
        await services.db.prepare(
            "SELECT * FROM fire_configs WHERE challenge_id = ? AND resolution_strategy = 'ORACLE'"
        )
        .bind(challenge_id)
        .first()
    )


def predicate_holds(config: dict[str, Any], answer: int) -> bool:
    threshold = int(config["oracle_threshold"])
    return answer >= threshold if config["oracle_comparator"] == "gte" else answer <= threshold


async def _read(services: Services, config: dict[str, Any]) -> RoundData:
    try:
        network = network_by_name(config["oracle_network"], services.env)
        client = build_rpc_client(network, services.env, services.http)
        return await latest_round(client, config["oracle_feed_address"])
    except (RpcError, MalformedFeedAnswer, UnsupportedNetwork) as error:
        raise ApiError(
            "E4001", "The price feed could not be read; retried on the next tick", {"reason": type(error).__name__}
        ) from None


def _clear_schedule(services: Services, change: Change) -> None:
    change.extra.append(
        transitions.guarded_update(
            services.db,
            change,
            "UPDATE fire_configs SET oracle_next_check_at = NULL WHERE challenge_id = ?",
            change.challenge["id"],
        )
    )


async def resolve_from_feed(services: Services, challenge: dict[str, Any], actor: str) -> None:
    """Read the feed now: fresh answer → winner by the predicate; stale → DISPUTED (422 E4002)."""
    config = await config_of(services, challenge["id"])
    if config is None or challenge["mode"] != modes.FIRE:
        raise ApiError("E3021", "outcome is required unless the challenge resolves by ORACLE")
    if challenge["status"] != modes.AWAITING_RESOLUTION:
        raise ApiError("E3020", details={"status": challenge["status"]})
    now = services.now()
    if now < parse_time(config["oracle_resolve_after"]):
        raise ApiError(
            "E3020", "The oracle is read only after resolve_after", {"resolve_after": config["oracle_resolve_after"]}
        )
    round_data = await _read(services, config)
    age = now.timestamp() - round_data.updated_at
    max_age = services.env.int("ORACLE_MAX_AGE_SECONDS", DEFAULT_MAX_AGE_SECONDS)
    if age > max_age or round_data.updated_at == 0:
        change = Change(
            challenge,
            actor,
            "oracle answer stale",
            modes.DISPUTED,
            events=[
                ("challenge.disputed", lifecycle.event_payload(challenge, modes.DISPUTED, reason="oracle_stale"), None)
            ],
        )
        _clear_schedule(services, change)
        await transitions.apply(services.db, lifecycle.with_deadline(change, modes.DISPUTED), now)
        raise ApiError(
            "E4002",
            "The oracle's answer is too old to decide; a moderator will resolve",
            {"age_seconds": int(age), "max_age_seconds": max_age, "status": modes.DISPUTED},
        )
    outcome = "CREATOR_WIN" if predicate_holds(config, round_data.answer) else "COUNTERPARTY_WIN"
    change = Change(challenge, actor, f"oracle: {outcome}")
    _clear_schedule(services, change)
    await lifecycle.finish(services, change, outcome, now)


async def resolve_due(services: Services) -> dict[str, int]:
    """Cron: every ORACLE challenge past resolve_after; unreachable feeds are retried a minute later."""
    now = services.now()
    stamp = format_time(now)
    rows = (
        await services.db.prepare(
            "SELECT c.* FROM challenges c JOIN fire_configs f ON f.challenge_id = c.id"
            " WHERE f.oracle_next_check_at IS NOT NULL AND f.oracle_next_check_at <= ? AND c.status = 'AWAITING_RESOLUTION'"
            " ORDER BY f.oracle_next_check_at LIMIT ?"
        )
        .bind(stamp, BATCH_LIMIT)
        .all()
    )
    counts = {"resolved": 0, "disputed": 0, "retry": 0, "skipped": 0}
    for challenge in rows.results:
        try:
            await resolve_from_feed(services, challenge, ORACLE_ACTOR)
            counts["resolved"] += 1
        except ApiError as error:
            if error.code == "E4002":
                counts["disputed"] += 1
            elif error.code == "E4001":
                counts["retry"] += 1
                await (
                    services.db.prepare("UPDATE fire_configs SET oracle_next_check_at = ? WHERE challenge_id = ?")
                    .bind(format_time(now + timedelta(seconds=RETRY_SECONDS)), challenge["id"])
                    .run()
                )
                services.logger.warning("oracle_unreachable", challenge_id=challenge["id"])
            else:
                counts["skipped"] += 1
    return counts
