"""FIRE ORACLE resolution: after `resolve_after`, read the feed and apply the predicate (SPEC §9)."""

from __future__ import annotations

from datetime import timedelta

from chain.networks import UnsupportedNetwork, network_by_name
from chain.oracle import MalformedFeedAnswer, RoundData, latest_round
from chain.provider import build_rpc_client
from chain.rpc import RpcError
from challenges import modes, outcomes, store, transitions
from challenges.records import Oracle
from challenges.store import Aggregate
from challenges.transitions import Change, event_payload, with_deadline
from core.clock import format_time, parse_time
from core.context import Services
from core.errors import ApiError

ORACLE_ACTOR = "system:oracle"
RETRY_SECONDS = 60
DEFAULT_MAX_AGE_SECONDS = 3600
BATCH_LIMIT = 20


def config_of(aggregate: Aggregate) -> Oracle | None:
    """The challenge's feed and predicate when it resolves by ORACLE, else None."""
    config = aggregate.fire_config
    return config.oracle if config is not None else None


def predicate_holds(config: Oracle, answer: int) -> bool:
    threshold = int(config.threshold)
    return answer >= threshold if config.comparator == "gte" else answer <= threshold


async def _read(services: Services, config: Oracle) -> RoundData:
    try:
        network = network_by_name(config.network, services.env)
        client = build_rpc_client(network, services.env, services.http)
        return await latest_round(client, config.feed_address)
    except (RpcError, MalformedFeedAnswer, UnsupportedNetwork) as error:
        raise ApiError(
            "E4001", "The price feed could not be read; retried on the next tick", {"reason": type(error).__name__}
        ) from None


def _clear_schedule(services: Services, change: Change) -> None:
    change.extra.append(store.oracle_unschedule(services.db, change.guard(), change.challenge.id))


async def resolve_from_feed(services: Services, aggregate: Aggregate, actor: str) -> Aggregate | None:
    """Read the feed now: fresh answer → winner by the predicate; stale → DISPUTED (422 E4002)."""
    challenge = aggregate.challenge
    config = config_of(aggregate)
    if config is None or challenge.mode != modes.FIRE:
        raise ApiError("E3021", "outcome is required unless the challenge resolves by ORACLE")
    if challenge.status != modes.AWAITING_RESOLUTION:
        raise ApiError("E3020", details={"status": challenge.status})
    now = services.now()
    if now < parse_time(config.resolve_after):
        raise ApiError("E3020", "The oracle is read only after resolve_after", {"resolve_after": config.resolve_after})
    round_data = await _read(services, config)
    age = now.timestamp() - round_data.updated_at
    max_age = services.env.int("ORACLE_MAX_AGE_SECONDS", DEFAULT_MAX_AGE_SECONDS)
    if age > max_age or round_data.updated_at == 0:
        change = Change(
            challenge,
            actor,
            "oracle answer stale",
            modes.DISPUTED,
            events=[("challenge.disputed", event_payload(challenge, modes.DISPUTED, reason="oracle_stale"), None)],
        )
        _clear_schedule(services, change)
        await transitions.apply(services.db, with_deadline(change, modes.DISPUTED), now)
        raise ApiError(
            "E4002",
            "The oracle's answer is too old to decide; a moderator will resolve",
            {"age_seconds": int(age), "max_age_seconds": max_age, "status": modes.DISPUTED},
        )
    outcome = "CREATOR_WIN" if predicate_holds(config, round_data.answer) else "COUNTERPARTY_WIN"
    change = Change(challenge, actor, f"oracle: {outcome}")
    _clear_schedule(services, change)
    return await outcomes.finish(services, change, aggregate.held_stakes, outcome, now)


async def resolve_due(services: Services) -> dict[str, int]:
    """Cron: every ORACLE challenge past resolve_after; unreachable feeds are retried a minute later."""
    now = services.now()
    stamp = format_time(now)
    due = await store.oracle_due(services.db, stamp, BATCH_LIMIT)
    counts = {"resolved": 0, "disputed": 0, "retry": 0, "skipped": 0}
    for aggregate in due:
        challenge = aggregate.challenge
        try:
            await resolve_from_feed(services, aggregate, ORACLE_ACTOR)
            counts["resolved"] += 1
        except ApiError as error:
            if error.code == "E4002":
                counts["disputed"] += 1
            elif error.code == "E4001":
                counts["retry"] += 1
                await store.reschedule_oracle(
                    services.db, challenge.id, format_time(now + timedelta(seconds=RETRY_SECONDS))
                )
                services.logger.warning("oracle_unreachable", challenge_id=challenge.id)
            else:
                counts["skipped"] += 1
    return counts
