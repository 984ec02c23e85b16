"""Webhook delivery: outbox fan-out, leased claims, Standard Webhooks sends, backoff with jitter, attempt records."""

from __future__ import annotations

import json
import sys
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import httpx

from core import flags
from core.clock import format_time, unix_seconds
from core.context import Services
from core.errors import ApiError
from core.ids import new_id
from db.port import MAX_BOUND_PARAMETERS, Database, DatabaseError, Statement
from relay import notify, secretbox, signing, transport
from relay.queues import drain_in_order
from relay.secretbox import KeyRing
from relay.transport import (
    DEFAULT_TIMEOUT_SECONDS,
    MAX_RESPONSE_BYTES,
    HttpResult,
    clean_text,
    post_bounded,
    retry_after_seconds,
    timeout_setting,
)
from relay.webhooks import parse_event_types, signing_secrets, validate_url

# The guarded transport dials sockets itself: CPython only. On Workers, fetch() makes every connection.
if sys.platform != "emscripten":
    from relay import egress

# Delay after attempt n (1-based) fails: about 1 min, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h; then FAILED.
RETRY_DELAYS: tuple[int, ...] = (60, 300, 1800, 7200, 18000, 36000, 36000)
MAX_ATTEMPTS = len(RETRY_DELAYS) + 1
FANOUT_LIMIT = 100
SEND_LIMIT = 50
SEND_CONCURRENCY = 10
LEASE_MARGIN_SECONDS = 30
USER_AGENT = "TattleHash-Webhooks/2"
GONE_REASON = "the receiver answered 410 Gone"
# Kept here too: it bounds a webhook's wait as much as a notification's (tests and docs name it here).
RETRY_AFTER_CAP_SECONDS = transport.RETRY_AFTER_CAP_SECONDS


def backoff(
    attempt_number: int, retry_after: float | None = None, delays: Sequence[int] = RETRY_DELAYS
) -> float | None:
    """Seconds to wait after webhook attempt `attempt_number` failed (see transport.backoff)."""
    return transport.backoff(attempt_number, retry_after, delays)


# ---- fan-out: undispatched events → webhook_deliveries + notifications, then mark dispatched (one batch)


def _chunks(items: Sequence[Any], size: int) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


async def _select_in(db: Database, sql: str, values: Iterable[Any], fixed: Sequence[Any] = ()) -> list[dict[str, Any]]:
    """Run `sql` (with one `{marks}` placeholder) over chunks of `values`, inside D1's bound-parameter limit."""
    rows: list[dict[str, Any]] = []
    for chunk in _chunks(sorted(set(values)), MAX_BOUND_PARAMETERS - len(fixed) - 1):
        marks = ", ".join("?" for _ in chunk)
        rows += (await db.prepare(sql.format(marks=marks)).bind(*fixed, *chunk).all()).results
    return rows


def _multi_insert(
    db: Database, head: str, tail: str, fixed: Sequence[Any], rows: Sequence[tuple[Any, ...]]
) -> list[Statement]:
    """Multi-row `INSERT … SELECT … FROM (VALUES …)` statements, each inside the bound-parameter limit."""
    if not rows:
        return []
    width = len(rows[0])
    per_statement = (MAX_BOUND_PARAMETERS - len(fixed)) // width
    statements = []
    for chunk in _chunks(rows, per_statement):
        values = ", ".join("(" + ", ".join("?" for _ in range(width)) + ")" for _ in chunk)
        params = [value for row in chunk for value in row]
        statements.append(db.prepare(f"{head} FROM (VALUES {values}) AS v {tail}").bind(*fixed, *params))
    return statements


def _delivery_inserts(db: Database, stamp: str, rows: Sequence[tuple[str, str, str]]) -> list[Statement]:
    return _multi_insert(
        db,
        "INSERT OR IGNORE INTO webhook_deliveries (id, endpoint_id, event_id, status, attempt_count,"
        " next_attempt_at, created_at, updated_at) SELECT v.column1, v.column2, v.column3, 'PENDING', 0, ?, ?, ?",
        # Skips endpoints deleted or disabled since they were read, so no delivery outlives its endpoint.
        "WHERE EXISTS (SELECT 1 FROM webhook_endpoints w WHERE w.id = v.column2 AND w.status = 'ACTIVE')",
        (stamp, stamp, stamp),
        rows,
    )


def _notification_inserts(db: Database, stamp: str, rows: Sequence[tuple[str, str, str, str, str]]) -> list[Statement]:
    return _multi_insert(
        db,
        "INSERT OR IGNORE INTO notifications (id, event_id, user_id, channel, template, status, attempt_count,"
        " next_attempt_at, created_at, updated_at)"
        " SELECT v.column1, v.column2, v.column3, v.column4, v.column5, 'PENDING', 0, ?, ?, ?",
        "",
        (stamp, stamp, stamp),
        rows,
    )


def _mark_dispatched(db: Database, stamp: str, event_ids: Sequence[str]) -> list[Statement]:
    statements = []
    for chunk in _chunks(event_ids, MAX_BOUND_PARAMETERS - 1):
        marks = ", ".join("?" for _ in chunk)
        statements.append(
            db.prepare(
                f"UPDATE events SET dispatched_at = ? WHERE dispatched_at IS NULL AND id IN ({marks})"  # noqa: S608
            ).bind(stamp, *chunk)
        )
    return statements


@dataclass
class _Plan:
    event_id: str
    deliveries: list[tuple[str, str, str]] = field(default_factory=list)
    notifications: list[tuple[str, str, str, str, str]] = field(default_factory=list)


async def fan_out(services: Services, *, limit: int = FANOUT_LIMIT) -> dict[str, int]:
    """Turn up to `limit` undispatched events into deliveries and notifications; idempotent under overlap.

    Deliveries and notifications are INSERT OR IGNORE against their UNIQUE keys and the event is marked
    only if still unmarked, so two dispatchers reading the same events write each row once.
    """
    db, env = services.db, services.env
    events = (
        await db.prepare(
            "SELECT id, type, challenge_id, user_id FROM events WHERE dispatched_at IS NULL ORDER BY created_at, rowid"
            " LIMIT ?"
        )
        .bind(limit)
        .all()
    ).results
    if not events:
        return {"events": 0, "deliveries": 0, "notifications": 0}
    challenges = {
        row["id"]: row
        for row in await _select_in(
            db,
            "SELECT id, creator_user_id, counterparty_user_id FROM challenges WHERE id IN ({marks})",
            (event["challenge_id"] for event in events if event["challenge_id"]),
        )
    }
    audiences: dict[str, set[str]] = {}
    recipients: dict[str, list[str]] = {}
    for event in events:
        challenge = challenges.get(event["challenge_id"])
        parties = {challenge["creator_user_id"], challenge["counterparty_user_id"]} if challenge else set()
        audiences[event["id"]] = {user for user in (*parties, event["user_id"]) if user}
        recipients[event["id"]] = notify.recipients(event["type"], challenge)
    endpoints: dict[str, list[dict[str, Any]]] = {}
    for row in await _select_in(
        db,
        "SELECT id, user_id, event_types FROM webhook_endpoints WHERE status = 'ACTIVE' AND user_id IN ({marks})"
        " ORDER BY created_at, id",
        (user for users in audiences.values() for user in users if env.flag(flags.WEBHOOKS, user)),
    ):
        endpoints.setdefault(row["user_id"], []).append(row)
    contacts = {
        row["id"]: row
        for row in await _select_in(
            db,
            "SELECT id, email, phone FROM users WHERE id IN ({marks})",
            (user for users in recipients.values() for user in users if env.flag(flags.NOTIFICATIONS, user)),
        )
    }
    plans = []
    for event in events:
        plan = _Plan(event["id"])
        for user in sorted(audiences[event["id"]]):
            for endpoint in endpoints.get(user, []):
                wanted = parse_event_types(endpoint["event_types"])
                if wanted is None or event["type"] in wanted:
                    plan.deliveries.append((new_id(), endpoint["id"], event["id"]))
        for user in recipients[event["id"]]:
            contact = contacts.get(user)
            if contact is None:
                continue
            for channel in notify.channels(contact):
                plan.notifications.append((new_id(), event["id"], user, channel, event["type"]))
        plans.append(plan)
    stamp = format_time(services.now())
    await _commit(services, stamp, plans)
    return {
        "events": len(plans),
        "deliveries": sum(len(plan.deliveries) for plan in plans),
        "notifications": sum(len(plan.notifications) for plan in plans),
    }


def _statements(db: Database, stamp: str, plans: Sequence[_Plan]) -> list[Statement]:
    return [
        *_delivery_inserts(db, stamp, [row for plan in plans for row in plan.deliveries]),
        *_notification_inserts(db, stamp, [row for plan in plans for row in plan.notifications]),
        *_mark_dispatched(db, stamp, [plan.event_id for plan in plans]),
    ]


async def _commit(services: Services, stamp: str, plans: Sequence[_Plan]) -> None:
    """All plans in one batch; if that fails, event by event, so one bad event cannot hold back the rest."""
    db = services.db
    try:
        await db.batch(_statements(db, stamp, plans))
        return
    except DatabaseError as error:
        services.logger.error("relay_fanout_batch_failed", error_type=type(error).__name__, events=len(plans))
    for plan in plans:
        try:
            await db.batch(_statements(db, stamp, [plan]))
        except DatabaseError as error:
            # Left undispatched: retried by the next run, and visible in the log until fixed.
            services.logger.error("relay_fanout_event_failed", event_id=plan.event_id, error_type=type(error).__name__)


# ---- sending: claim with a lease, POST the signed message, record the attempt and what comes next


def message_body(event_type: str, created_at: str, payload: str) -> bytes:
    """The Standard Webhooks body `{type, timestamp, data}`; the same bytes on every attempt."""
    document = {"type": event_type, "timestamp": created_at, "data": json.loads(payload)}
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


_DUE_SQL = (
    "SELECT d.id, d.endpoint_id, d.attempt_count, w.url, w.secret, w.previous_secret, w.previous_secret_until,"
    " w.status AS endpoint_status, w.user_id,"
    " e.type AS event_type, e.payload, e.created_at AS event_created_at"
    " FROM webhook_deliveries d JOIN webhook_endpoints w ON w.id = d.endpoint_id JOIN events e ON e.id = d.event_id"
    " WHERE d.status = 'PENDING' AND d.next_attempt_at <= ? AND (d.lease_until IS NULL OR d.lease_until <= ?)"
    " ORDER BY d.next_attempt_at, d.rowid LIMIT ?"
)
_CLAIM_SQL = (
    "UPDATE webhook_deliveries SET lease_until = ?, lease_owner = ?, updated_at = ?"
    " WHERE id = ? AND status = 'PENDING' AND attempt_count = ? AND next_attempt_at <= ?"
    " AND (lease_until IS NULL OR lease_until <= ?)"
)
_HELD = "SELECT 1 FROM webhook_deliveries WHERE id = ? AND lease_owner = ? AND status = 'PENDING'"


async def claim(db: Database, row: dict[str, Any], owner: str, now: datetime, lease_seconds: float) -> bool:
    """Take the delivery for one attempt; of overlapping runs exactly one gets changes == 1."""
    stamp = format_time(now)
    lease_until = format_time(now + timedelta(seconds=lease_seconds))
    result = (
        await db.prepare(_CLAIM_SQL)
        .bind(lease_until, owner, stamp, row["id"], row["attempt_count"], stamp, stamp)
        .run()
    )
    return result.changes == 1


@dataclass
class Attempt:
    """What one attempt did and what the delivery becomes."""

    number: int
    started_at: str
    result: HttpResult
    status: str  # PENDING (retry later), DELIVERED or FAILED
    next_attempt_at: str | None
    error: str | None
    gone: bool = False


def judge(number: int, started: datetime, result: HttpResult, now: datetime, *, final: bool = False) -> Attempt:
    """Delivered on 2xx; 410 fails and disables; anything else retries on the schedule until it runs out.

    The recorded error is a classified reason only: what a receiver answers is never stored or shown.
    """
    stamp = format_time(started)
    if result.ok:
        return Attempt(number, stamp, result, "DELIVERED", None, None)
    error = "http_status" if result.status_code is not None else (result.reason or "request_failed")
    if result.status_code == 410:
        return Attempt(number, stamp, result, "FAILED", None, error, gone=True)
    delay = None if final else backoff(number, retry_after_seconds(result.headers.get("retry-after"), now))
    if delay is None:
        return Attempt(number, stamp, result, "FAILED", None, error)
    return Attempt(number, stamp, result, "PENDING", format_time(now + timedelta(seconds=delay)), error)


def record_statements(
    db: Database, row: dict[str, Any], owner: str, attempt: Attempt, now: datetime
) -> list[Statement]:
    """The attempt row and the delivery's new state, both only if this run still holds the lease."""
    stamp = format_time(now)
    attempt_id = new_id()
    result = attempt.result
    statements = [
        db.prepare(
            "INSERT INTO webhook_attempts (id, delivery_id, attempt_number, started_at, duration_ms, status_code, error)"
            f" SELECT ?, ?, ?, ?, ?, ?, ? WHERE EXISTS ({_HELD})"
        ).bind(
            attempt_id,
            row["id"],
            attempt.number,
            attempt.started_at,
            result.duration_ms,
            result.status_code,
            attempt.error,
            row["id"],
            owner,
        ),
        db.prepare(
            "UPDATE webhook_deliveries SET status = ?, attempt_count = ?, next_attempt_at = ?, lease_until = NULL,"
            " lease_owner = NULL, last_status_code = ?, last_error = ?, delivered_at = ?, updated_at = ?"
            " WHERE id = ? AND lease_owner = ? AND status = 'PENDING'"
        ).bind(
            attempt.status,
            attempt.number,
            attempt.next_attempt_at,
            result.status_code,
            attempt.error,
            stamp if attempt.status == "DELIVERED" else None,
            stamp,
            row["id"],
            owner,
        ),
    ]
    if attempt.gone:
        # Both guarded on this attempt's row: only the run that recorded the 410 disables the endpoint.
        statements += [
            db.prepare(
                "UPDATE webhook_endpoints SET status = 'DISABLED', disabled_reason = ?, updated_at = ?"
                " WHERE id = ? AND status = 'ACTIVE' AND EXISTS (SELECT 1 FROM webhook_attempts WHERE id = ?)"
            ).bind(GONE_REASON, stamp, row["endpoint_id"], attempt_id),
            # Deliveries another run holds right now finish their attempt; the claim step cancels them after.
            db.prepare(
                "UPDATE webhook_deliveries SET status = 'CANCELLED', updated_at = ? WHERE endpoint_id = ?"
                " AND status = 'PENDING' AND (lease_until IS NULL OR lease_until <= ?)"
                " AND EXISTS (SELECT 1 FROM webhook_attempts WHERE id = ?)"
            ).bind(stamp, row["endpoint_id"], stamp, attempt_id),
        ]
    return statements


@dataclass
class SendReport:
    delivered: int = 0
    retrying: int = 0
    failed: int = 0
    cancelled: int = 0
    skipped: int = 0
    errors: int = 0

    def as_dict(self) -> dict[str, int]:
        return dict(vars(self))


async def _cancel(db: Database, row: dict[str, Any], now: datetime) -> bool:
    stamp = format_time(now)
    result = (
        await db.prepare(
            "UPDATE webhook_deliveries SET status = 'CANCELLED', updated_at = ? WHERE id = ? AND status = 'PENDING'"
            " AND attempt_count = ? AND (lease_until IS NULL OR lease_until <= ?)"
        )
        .bind(stamp, row["id"], row["attempt_count"], stamp)
        .run()
    )
    return result.changes == 1


async def deliver_one(
    services: Services, row: dict[str, Any], owner: str, report: SendReport, http: httpx.AsyncClient, ring: KeyRing
) -> str | None:
    """One attempt of one due delivery, if this run wins the claim; the delivery's new status, else None."""
    db, env = services.db, services.env
    now = services.now()
    if row["endpoint_status"] != "ACTIVE":
        if await _cancel(db, row, now):
            report.cancelled += 1
        return None
    if not env.flag(flags.WEBHOOKS, row["user_id"]):
        report.skipped += 1  # paused while the flag is off for this user; resumes when it is back on
        return None
    # Opened before the claim: a secret no configured key opens raises (logged by the caller) and the
    # delivery stays due, untouched, until the operator puts the key back; no attempt is spent on it.
    signers = await signing_secrets(ring, row, now)
    timeout = timeout_setting(env, "WEBHOOK_TIMEOUT_SECONDS", DEFAULT_TIMEOUT_SECONDS)
    if not await claim(db, row, owner, now, timeout + LEASE_MARGIN_SECONDS):
        report.skipped += 1
        return None
    number = int(row["attempt_count"]) + 1
    started = services.now()
    final = False
    try:
        validate_url(row["url"], allow_insecure=env.bool("ALLOW_INSECURE_WEBHOOKS"))
    except ApiError as error:
        # Registered under rules that no longer hold (e.g. insecure URLs turned off): never send there.
        detail = clean_text(f"URL not allowed: {error.details.get('reason', error.message)}")
        result = HttpResult(None, 0, detail, reason="url_not_allowed")
        final = True
    else:
        try:
            body = message_body(row["event_type"], row["event_created_at"], row["payload"])
        except ValueError:
            # Cannot happen for outbox rows (json.dumps wrote them); if it does, fail it once, loudly, not forever.
            body = None
            result = HttpResult(None, 0, "event payload is not valid JSON", reason="invalid_payload")
            final = True
        if body is not None:
            msg_id = "msg_" + row["id"]
            headers = signing.headers(signers.all(), msg_id, unix_seconds(started), body)
            headers["user-agent"] = USER_AGENT
            result = await post_bounded(
                http, row["url"], seconds=timeout, max_bytes=MAX_RESPONSE_BYTES, content=body, headers=headers
            )
    finished = services.now()
    attempt = judge(number, started, result, finished, final=final)
    results = await db.batch(record_statements(db, row, owner, attempt, finished))
    if results[1].changes != 1:
        report.skipped += 1  # the lease ran out and another run took over; its record stands
        return None
    if attempt.status == "DELIVERED":
        report.delivered += 1
    elif attempt.status == "PENDING":
        report.retrying += 1
    else:
        report.failed += 1
    services.logger.info(
        "webhook_attempt",
        delivery_id=row["id"],
        endpoint_id=row["endpoint_id"],
        attempt=number,
        status_code=result.status_code,
        outcome=attempt.status,
        duration_ms=result.duration_ms,
        endpoint_disabled=attempt.gone,
    )
    return attempt.status


async def send_due(
    services: Services, *, limit: int = SEND_LIMIT, concurrency: int = SEND_CONCURRENCY
) -> dict[str, int]:
    """Attempt the due deliveries (bounded): endpoints in parallel, each endpoint's in event order.

    One endpoint's deliveries go one after another, so first attempts arrive in the order the events
    happened and no receiver gets a burst of parallel requests; after a failure the rest of that
    endpoint's queue waits for a later run, so a slow or broken receiver costs one timeout per run.
    """
    now = format_time(services.now())
    rows = (await services.db.prepare(_DUE_SQL).bind(now, now, limit).all()).results
    report = SendReport()
    if not rows:
        return report.as_dict()
    try:
        ring = secretbox.key_ring(services.env)
    except ApiError as error:
        # Nothing can be signed: every due delivery waits (no attempt spent) until the key is configured.
        report.errors = len(rows)
        services.logger.error("webhook_secret_key_unavailable", variable=error.details.get("variable"))
        return report.as_dict()
    queues: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        queues.setdefault(row["endpoint_id"], []).append(row)
    owner = new_id()

    def on_error(row: dict[str, Any], error: Exception) -> None:
        # The lease lapses and a later run retries; the log says which delivery and why (no data).
        report.errors += 1
        services.logger.error("webhook_delivery_error", delivery_id=row["id"], error_type=type(error).__name__)

    async with receiver_client(services) as http:
        await drain_in_order(
            queues.values(),
            concurrency=concurrency,
            send=lambda row: deliver_one(services, row, owner, report, http, ring),
            keep_going=lambda status: status is None or status == "DELIVERED",
            on_error=on_error,
        )
    return report.as_dict()


@asynccontextmanager
async def receiver_client(services: Services) -> AsyncIterator[httpx.AsyncClient]:
    """The client one send run reaches receivers with.

    CPython: relay.egress's guarded client (resolves each host once, refuses private, loopback,
    link-local, CGNAT and metadata answers, dials the checked address), closed after the run.
    Workers: the runtime's fetch(), which resolves names itself and cannot reach private networks.
    """
    if sys.platform == "emscripten":  # pragma: no cover - exercised in workerd
        yield services.http
        return
    async with egress.guarded_client(allow_insecure=services.env.bool("ALLOW_INSECURE_WEBHOOKS")) as client:
        yield client
