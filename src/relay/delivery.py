"""Webhook delivery: outbox fan-out, leased claims, Standard Webhooks sends, backoff with jitter, attempt records."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import httpx

from accounts import store as account_store
from challenges import store as challenge_store
from core import flags
from core.clock import format_time, unix_seconds
from core.context import Services
from core.errors import ApiError
from core.ids import new_id
from db.port import Database, DatabaseError, Statement
from relay import notify, secretbox, signing, store, transport
from relay.secretbox import KeyRing
from relay.store import AttemptRecord, DeliveryKey, QueuedDelivery
from relay.transport import (
    DEFAULT_TIMEOUT_SECONDS,
    MAX_RESPONSE_BYTES,
    HttpResult,
    clean_text,
    post_bounded,
    retry_after_seconds,
    timeout_setting,
)
from relay.webhooks import signing_secrets, validate_url

# The guarded transport dials sockets itself: CPython only. On Workers, fetch() makes every connection.
if sys.platform != "emscripten":
    from relay import egress

# Delay after attempt n (1-based) fails: about 1 min, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h; then FAILED.
RETRY_DELAYS: tuple[int, ...] = (60, 300, 1800, 7200, 18000, 36000, 36000)
MAX_ATTEMPTS = len(RETRY_DELAYS) + 1
FANOUT_LIMIT = 100
# One run's bounds (a cron invocation's wall clock and subrequests are limited): at most SEND_LIMIT attempts,
# none started after SEND_BUDGET_SECONDS, so a run with the default 10 s timeout ends within about 30 s.
# Each attempt is one fetch and two D1 calls: 200 of them stay well inside a paid Worker's subrequests.
SEND_LIMIT = 200
SEND_BUDGET_SECONDS = 20.0
SEND_CONCURRENCY = 10
# A healthy endpoint's backlog is read this many deliveries at a time while it drains.
QUEUE_PAGE = 50
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
    events = await store.undispatched_events(db, limit)
    if not events:
        return {"events": 0, "deliveries": 0, "notifications": 0}
    challenges = await challenge_store.parties_of_many(
        db, (event.challenge_id for event in events if event.challenge_id)
    )
    audiences: dict[str, set[str]] = {}
    recipients: dict[str, list[str]] = {}
    for event in events:
        challenge = challenges.get(event.challenge_id or "")
        parties = {challenge.creator_user_id, challenge.counterparty_user_id} if challenge else set()
        audiences[event.id] = {user for user in (*parties, event.user_id) if user}
        recipients[event.id] = notify.recipients(event.type, challenge)
    endpoints = await store.active_endpoints(
        db, (user for users in audiences.values() for user in users if env.flag(flags.WEBHOOKS, user))
    )
    contacts = await account_store.contacts_of(
        db, (user for users in recipients.values() for user in users if env.flag(flags.NOTIFICATIONS, user))
    )
    plans = []
    for event in events:
        plan = _Plan(event.id)
        for user in sorted(audiences[event.id]):
            for endpoint in endpoints.get(user, []):
                if endpoint.event_types is None or event.type in endpoint.event_types:
                    plan.deliveries.append((new_id(), endpoint.id, event.id))
        for user in recipients[event.id]:
            contact = contacts.get(user)
            if contact is None:
                continue
            for channel in notify.channels(contact):
                plan.notifications.append((new_id(), event.id, user, channel, event.type))
        plans.append(plan)
    stamp = format_time(services.now())
    await _commit(services, stamp, plans)
    return {
        "events": len(plans),
        "deliveries": sum(len(plan.deliveries) for plan in plans),
        "notifications": sum(len(plan.notifications) for plan in plans),
    }


def _statements(db: Database, stamp: str, plans: Sequence[_Plan]) -> list[Statement]:
    return store.fanout_statements(
        db,
        stamp,
        [row for plan in plans for row in plan.deliveries],
        [row for plan in plans for row in plan.notifications],
        [plan.event_id for plan in plans],
    )


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


async def claim(db: Database, key: DeliveryKey, owner: str, now: datetime, lease_seconds: float) -> bool:
    """Take the delivery for one attempt; of overlapping runs exactly one gets changes == 1."""
    lease_until = format_time(now + timedelta(seconds=lease_seconds))
    result = await store.claim_statement(db, key, owner, format_time(now), lease_until).run()
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


def record_statements(db: Database, key: DeliveryKey, owner: str, attempt: Attempt, now: datetime) -> list[Statement]:
    """The attempt row and the delivery's new state, both only if this run still holds the lease (a 410 also
    disables the endpoint and cancels what waits; see store.record_statements)."""
    result = attempt.result
    record = AttemptRecord(
        attempt_id=new_id(),
        number=attempt.number,
        started_at=attempt.started_at,
        duration_ms=result.duration_ms,
        status_code=result.status_code,
        error=attempt.error,
        status=attempt.status,
        next_attempt_at=attempt.next_attempt_at,
        disable_reason=GONE_REASON if attempt.gone else None,
    )
    return store.record_statements(db, key, owner, record, format_time(now))


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


async def _cancel(db: Database, key: DeliveryKey, now: datetime) -> bool:
    return (await store.cancel_statement(db, key, format_time(now)).run()).changes == 1


async def deliver_one(
    services: Services, row: QueuedDelivery, owner: str, report: SendReport, http: httpx.AsyncClient, ring: KeyRing
) -> str | None:
    """One attempt of one due delivery, if this run wins the claim; the delivery's new status, else None."""
    db, env = services.db, services.env
    now = services.now()
    if row.target.status != "ACTIVE":
        if await _cancel(db, row, now):
            report.cancelled += 1
        return None
    if not env.flag(flags.WEBHOOKS, row.target.user_id):
        report.skipped += 1  # paused while the flag is off for this user; resumes when it is back on
        return None
    # Opened before the claim: a secret no configured key opens raises (logged by the caller) and the
    # delivery stays due, untouched, until the operator puts the key back; no attempt is spent on it.
    signers = await signing_secrets(ring, row.target.secrets, now)
    timeout = timeout_setting(env, "WEBHOOK_TIMEOUT_SECONDS", DEFAULT_TIMEOUT_SECONDS)
    if not await claim(db, row, owner, now, timeout + LEASE_MARGIN_SECONDS):
        report.skipped += 1
        return None
    number = row.attempt_count + 1
    started = services.now()
    final = False
    try:
        validate_url(row.target.url, allow_insecure=env.bool("ALLOW_INSECURE_WEBHOOKS"))
    except ApiError as error:
        # Registered under rules that no longer hold (e.g. insecure URLs turned off): never send there.
        detail = clean_text(f"URL not allowed: {error.details.get('reason', error.message)}")
        result = HttpResult(None, 0, detail, reason="url_not_allowed")
        final = True
    else:
        try:
            body = message_body(row.event_type, row.event_created_at, row.payload)
        except ValueError:
            # Cannot happen for outbox rows (json.dumps wrote them); if it does, fail it once, loudly, not forever.
            body = None
            result = HttpResult(None, 0, "event payload is not valid JSON", reason="invalid_payload")
            final = True
        if body is not None:
            msg_id = "msg_" + row.id
            headers = signing.headers(signers.all(), msg_id, unix_seconds(started), body)
            headers["user-agent"] = USER_AGENT
            result = await post_bounded(
                http, row.target.url, seconds=timeout, max_bytes=MAX_RESPONSE_BYTES, content=body, headers=headers
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
        delivery_id=row.id,
        endpoint_id=row.endpoint_id,
        attempt=number,
        status_code=result.status_code,
        outcome=attempt.status,
        duration_ms=result.duration_ms,
        endpoint_disabled=attempt.gone,
    )
    return attempt.status


@dataclass
class RunLimits:
    """What is left of one run's bounds: attempts, and the monotonic time after which none starts."""

    attempts: int
    deadline: float

    def left(self) -> bool:
        return self.attempts > 0 and time.monotonic() < self.deadline

    def take(self) -> bool:
        if not self.left():
            return False
        self.attempts -= 1
        return True


def _queues(rows: Sequence[QueuedDelivery]) -> list[list[QueuedDelivery]]:
    """Per endpoint (in the order they were read): its probe first, then the rest in event order."""
    queues: dict[str, list[QueuedDelivery]] = {}
    for row in rows:
        queues.setdefault(row.endpoint_id, []).append(row)
    return [sorted(queue, key=lambda row: (not row.probe, row.position)) for queue in queues.values()]


async def send_due(
    services: Services,
    *,
    limit: int = SEND_LIMIT,
    concurrency: int = SEND_CONCURRENCY,
    budget_seconds: float = SEND_BUDGET_SECONDS,
) -> dict[str, int]:
    """Attempt due deliveries within the run's bounds (`limit` attempts, `budget_seconds`): endpoints in
    parallel (`concurrency` at a time), each endpoint's one after another.

    An endpoint's run starts with its earliest due delivery. If that fails, the endpoint stops there: a slow or
    broken receiver costs one attempt per run and every other delivery keeps its schedule. If it is delivered,
    the receiver is back, so the endpoint's whole backlog follows in event order, due or not (those waiting
    out a backoff included), until a failure or the run's bounds; what the bounds left is made due at once,
    so the next run carries on.
    """
    db = services.db
    started = format_time(services.now())
    limits = RunLimits(limit, time.monotonic() + budget_seconds)
    rows = await store.send_queues(db, services.now(), limit)
    report = SendReport()
    if not rows:
        return report.as_dict()
    try:
        ring = secretbox.key_ring(services.env)
    except ApiError as error:
        # Nothing can be signed: every due delivery waits (no attempt spent) until the key is configured.
        report.errors = sum(1 for row in rows if row.due)
        services.logger.error("webhook_secret_key_unavailable", variable=error.details.get("variable"))
        return report.as_dict()
    owner = new_id()
    gate = asyncio.Semaphore(concurrency)

    async def bring_forward(endpoint_id: str) -> None:
        await store.bring_forward_statement(db, endpoint_id, format_time(services.now()), started).run()

    async def drain(queue: list[QueuedDelivery], http: httpx.AsyncClient) -> None:
        endpoint_id = queue[0].endpoint_id
        rest = [row for row in queue if not row.probe]
        cursor = rest[-1] if rest else None  # where the next page of this endpoint's backlog starts
        more = queue[0].queued > len(queue)
        page = queue
        healthy = False  # set by this run's first delivered attempt to this endpoint
        while page:
            for row in page:
                if not row.due and not healthy:
                    continue  # waiting out its backoff, and nothing says the receiver is back yet
                if not limits.take():
                    if healthy:
                        await bring_forward(endpoint_id)
                    return
                try:
                    status = await deliver_one(services, row, owner, report, http, ring)
                except Exception as error:
                    # The lease lapses and a later run retries; the log says which delivery and why (no data).
                    report.errors += 1
                    services.logger.error("webhook_delivery_error", delivery_id=row.id, error_type=type(error).__name__)
                    return
                if status == "DELIVERED":
                    healthy = True
                elif status is not None:
                    return  # PENDING (retry later) or FAILED: the rest of this endpoint's queue waits
            if not (healthy and more):
                return
            if not limits.left():
                await bring_forward(endpoint_id)
                return
            size = min(QUEUE_PAGE, limits.attempts)
            page = await store.queue_after(db, endpoint_id, cursor, services.now(), size)
            if page:
                cursor, more = page[-1], len(page) == size

    async def gated(queue: list[QueuedDelivery], http: httpx.AsyncClient) -> None:
        async with gate:
            await drain(queue, http)

    async with receiver_client(services) as http:
        await asyncio.gather(*(gated(queue, http) for queue in _queues(rows)))
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
