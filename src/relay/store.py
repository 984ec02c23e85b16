"""Relay store: all SQL of events (outbox), webhook endpoints, deliveries, attempts and notifications; typed records.

Statements take a core.auth.Caller where a route may run them in the auth lookup's batch (core.auth.Preload).
Besides its own tables the relay reads a few columns of other aggregates, read-only: the parties of a
challenge (who an event concerns), the verified contacts of users (who a notification goes to) and a
challenge's title (a due notification's message). Those reads live here too, so no relay module outside
this one writes SQL.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from core.auth import Caller
from core.clock import format_time, parse_time
from core.errors import ApiError
from db.port import MAX_BOUND_PARAMETERS, Database, QueryResult, Row, Statement

# ---- events (the transactional outbox)


def insert_event_statement(
    db: Database,
    event_id: str,
    event_type: str,
    payload: str,
    stamp: str,
    *,
    challenge_id: str | None,
    user_id: str | None,
    guard_sql: str | None = None,
    guard_params: tuple[Any, ...] = (),
) -> Statement:
    """INSERT one event; with a guard, only if the guard query finds a row (relay.outbox explains why)."""
    values = (event_id, event_type, challenge_id, user_id, payload, stamp)
    columns = "INSERT INTO events (id, type, challenge_id, user_id, payload, created_at) "
    if guard_sql is None:
        return db.prepare(columns + "VALUES (?, ?, ?, ?, ?, ?)").bind(*values)
    # guard_sql is fixed text from the calling module (never input); its values are bound.
    return db.prepare(columns + f"SELECT ?, ?, ?, ?, ?, ? WHERE EXISTS ({guard_sql})").bind(*values, *guard_params)


@dataclass(frozen=True)
class PendingEvent:
    """An event not yet fanned out to deliveries and notifications."""

    id: str
    type: str
    challenge_id: str | None
    user_id: str | None


async def undispatched_events(db: Database, limit: int) -> list[PendingEvent]:
    rows = (
        await db.prepare(
            "SELECT id, type, challenge_id, user_id FROM events WHERE dispatched_at IS NULL ORDER BY created_at, rowid"
            " LIMIT ?"
        )
        .bind(limit)
        .all()
    ).results
    return [PendingEvent(row["id"], row["type"], row["challenge_id"], row["user_id"]) for row in rows]


def _chunks(items: Sequence[Any], size: int) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


async def _select_in(db: Database, sql: str, values: Iterable[Any], fixed: Sequence[Any] = ()) -> list[Row]:
    """Run `sql` (with one `{marks}` placeholder) over chunks of `values`, inside D1's bound-parameter limit."""
    rows: list[Row] = []
    for chunk in _chunks(sorted(set(values)), MAX_BOUND_PARAMETERS - len(fixed) - 1):
        marks = ", ".join("?" for _ in chunk)
        rows += (await db.prepare(sql.format(marks=marks)).bind(*fixed, *chunk).all()).results
    return rows


# ---- webhook endpoints

ENDPOINT_COLUMNS = "id, user_id, url, description, event_types, status, disabled_reason, created_at, updated_at"
# What a deleted endpoint keeps in place of its secret: nothing that could ever sign again.
DELETED_SECRET = "deleted"  # noqa: S105 - a tombstone, not a secret


def parse_event_types(raw: str | None) -> list[str] | None:
    """The stored filter: NULL means every event type."""
    if raw is None:
        return None
    value = json.loads(raw)
    return [str(item) for item in value] if isinstance(value, list) else None


@dataclass(frozen=True)
class Endpoint:
    """A registered endpoint as the API shows it: never its secret."""

    id: str
    url: str
    description: str | None
    event_types: list[str] | None
    status: str
    disabled_reason: str | None
    created_at: str
    updated_at: str

    def public(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "url": self.url,
            "description": self.description,
            "event_types": self.event_types,
            "status": self.status,
            "disabled_reason": self.disabled_reason,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        }


def _endpoint(row: Row) -> Endpoint:
    return Endpoint(
        id=row["id"],
        url=row["url"],
        description=row["description"],
        event_types=parse_event_types(row["event_types"]),
        status=row["status"],
        disabled_reason=row["disabled_reason"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


def insert_endpoint_statement(
    db: Database,
    endpoint: Endpoint,
    user_id: str,
    sealed_secret: str,
    *,
    max_per_user: int,
) -> Statement:
    """Insert an ACTIVE endpoint unless the user already has `max_per_user` (changes == 0 then).

    The count and the insert are one statement, so concurrent registrations cannot pass the cap together.
    """
    types = json.dumps(endpoint.event_types, separators=(",", ":")) if endpoint.event_types is not None else None
    return db.prepare(
        "INSERT INTO webhook_endpoints (id, user_id, url, description, event_types, secret, status, created_at,"
        " updated_at) SELECT ?, ?, ?, ?, ?, ?, 'ACTIVE', ?, ?"
        " WHERE (SELECT COUNT(*) FROM webhook_endpoints WHERE user_id = ? AND status <> 'DELETED') < ?"
    ).bind(
        endpoint.id,
        user_id,
        endpoint.url,
        endpoint.description,
        types,
        sealed_secret,
        endpoint.created_at,
        endpoint.updated_at,
        user_id,
        max_per_user,
    )


def endpoints_statement(db: Database, caller: Caller) -> Statement:
    """The caller's endpoints; GET /webhooks runs it in the auth batch (core.auth.Preload)."""
    # caller.sql is one of core.auth's fixed fragments, never input; its values are bound.
    return db.prepare(
        f"SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints WHERE user_id = {caller.sql} AND status <> 'DELETED'"  # noqa: S608
        " ORDER BY created_at, id"
    ).bind(*caller.params)


def endpoints_from(result: QueryResult) -> list[Endpoint]:
    return [_endpoint(row) for row in result.results]


def endpoint_statement(db: Database, caller: Caller, endpoint_id: str) -> Statement:
    return db.prepare(
        f"SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints WHERE id = ? AND user_id = {caller.sql}"  # noqa: S608
        " AND status <> 'DELETED'"
    ).bind(endpoint_id, *caller.params)


def endpoint_from(result: QueryResult) -> Endpoint:
    """The caller's own endpoint; anyone else's (or a deleted one) is 404 E6002, so existence never leaks."""
    if not result.results:
        raise ApiError("E6002")
    return _endpoint(result.results[0])


def delete_endpoint_statements(db: Database, user_id: str, endpoint_id: str, stamp: str) -> list[Statement]:
    """Cancel what was still waiting, then soft-delete and forget the secrets; the last changes 1 if it was there."""
    return [
        db.prepare(
            "UPDATE webhook_deliveries SET status = 'CANCELLED', lease_until = NULL, lease_owner = NULL,"
            " updated_at = ? WHERE endpoint_id = ? AND status = 'PENDING' AND EXISTS ("
            "SELECT 1 FROM webhook_endpoints WHERE id = ? AND user_id = ? AND status <> 'DELETED')"
        ).bind(stamp, endpoint_id, endpoint_id, user_id),
        db.prepare(
            "UPDATE webhook_endpoints SET status = 'DELETED', secret = ?, previous_secret = NULL,"
            " previous_secret_until = NULL, updated_at = ? WHERE id = ? AND user_id = ? AND status <> 'DELETED'"
        ).bind(DELETED_SECRET, stamp, endpoint_id, user_id),
    ]


def rotate_secret_statement(
    db: Database, user_id: str, endpoint_id: str, sealed: str, previous_until: str, stamp: str
) -> Statement:
    """The current sealed secret becomes the previous one (until `previous_until`); changes 1 if it was there."""
    return db.prepare(
        "UPDATE webhook_endpoints SET previous_secret = secret, previous_secret_until = ?, secret = ?,"
        " updated_at = ? WHERE id = ? AND user_id = ? AND status <> 'DELETED'"
    ).bind(previous_until, sealed, stamp, endpoint_id, user_id)


@dataclass(frozen=True)
class SealedSecrets:
    """An endpoint's signing secrets as stored (sealed), with the end of the previous one's overlap."""

    endpoint_id: str
    secret: str
    previous_secret: str | None
    previous_secret_until: str | None


async def secrets_to_reseal(db: Database, prefix: str, stamp: str, limit: int) -> list[SealedSecrets]:
    """Endpoints whose secrets are not sealed under `prefix` (the current key), or whose overlap ended."""
    rows = (
        await db.prepare(
            "SELECT id, secret, previous_secret, previous_secret_until FROM webhook_endpoints WHERE status <> 'DELETED'"
            " AND (secret NOT LIKE ? OR (previous_secret IS NOT NULL AND (previous_secret NOT LIKE ?"
            " OR previous_secret_until IS NULL OR previous_secret_until <= ?))) ORDER BY id LIMIT ?"
        )
        .bind(prefix, prefix, stamp, limit)
        .all()
    ).results
    return [
        SealedSecrets(row["id"], row["secret"], row["previous_secret"], row["previous_secret_until"]) for row in rows
    ]


def reseal_statement(db: Database, read: SealedSecrets, secret: str, previous: str | None) -> Statement:
    """Store re-sealed secrets, only if the row is still what was read (a rotation in between wins)."""
    return db.prepare(
        "UPDATE webhook_endpoints SET secret = ?, previous_secret = ?, previous_secret_until = ?"
        " WHERE id = ? AND secret = ? AND previous_secret IS ? AND status <> 'DELETED'"
    ).bind(
        secret,
        previous,
        read.previous_secret_until if previous else None,
        read.endpoint_id,
        read.secret,
        read.previous_secret,
    )


@dataclass(frozen=True)
class AudienceEndpoint:
    """An active endpoint as fan-out sees it: whose it is and which event types it wants."""

    id: str
    user_id: str
    event_types: list[str] | None


async def active_endpoints(db: Database, user_ids: Iterable[str]) -> dict[str, list[AudienceEndpoint]]:
    """These users' ACTIVE endpoints, per user, oldest first."""
    found: dict[str, list[AudienceEndpoint]] = {}
    for row in await _select_in(
        db,
        "SELECT id, user_id, event_types FROM webhook_endpoints WHERE status = 'ACTIVE' AND user_id IN ({marks})"
        " ORDER BY created_at, id",
        user_ids,
    ):
        found.setdefault(row["user_id"], []).append(
            AudienceEndpoint(row["id"], row["user_id"], parse_event_types(row["event_types"]))
        )
    return found


# ---- fan-out: deliveries and notifications for new events, and the events marked, in one batch


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


def fanout_statements(
    db: Database,
    stamp: str,
    deliveries: Sequence[tuple[str, str, str]],
    notifications: Sequence[tuple[str, str, str, str, str]],
    event_ids: Sequence[str],
) -> list[Statement]:
    """Deliveries (id, endpoint_id, event_id) and notifications (id, event_id, user_id, channel, template) as
    INSERT OR IGNORE against their UNIQUE keys, then the events marked only if still unmarked: two dispatchers
    reading the same events write each row once."""
    delivery_inserts = _multi_insert(
        db,
        "INSERT OR IGNORE INTO webhook_deliveries (id, endpoint_id, event_id, status, attempt_count,"
        " next_attempt_at, created_at, updated_at) SELECT v.column1, v.column2, v.column3, 'PENDING', 0, ?, ?, ?",
        # Skips endpoints deleted or disabled since they were read, so no delivery outlives its endpoint.
        "WHERE EXISTS (SELECT 1 FROM webhook_endpoints w WHERE w.id = v.column2 AND w.status = 'ACTIVE')",
        (stamp, stamp, stamp),
        deliveries,
    )
    notification_inserts = _multi_insert(
        db,
        "INSERT OR IGNORE INTO notifications (id, event_id, user_id, channel, template, status, attempt_count,"
        " next_attempt_at, created_at, updated_at)"
        " SELECT v.column1, v.column2, v.column3, v.column4, v.column5, 'PENDING', 0, ?, ?, ?",
        "",
        (stamp, stamp, stamp),
        notifications,
    )
    marks = []
    for chunk in _chunks(event_ids, MAX_BOUND_PARAMETERS - 1):
        placeholders = ", ".join("?" for _ in chunk)
        marks.append(
            db.prepare(
                f"UPDATE events SET dispatched_at = ? WHERE dispatched_at IS NULL AND id IN ({placeholders})"  # noqa: S608
            ).bind(stamp, *chunk)
        )
    return [*delivery_inserts, *notification_inserts, *marks]


# ---- webhook deliveries: the send queue, leased claims, attempt records


@dataclass(frozen=True)
class DeliveryKey:
    """What identifies a delivery's current state: a claim or record applies only while it is unchanged."""

    id: str
    endpoint_id: str
    attempt_count: int
    next_attempt_at: str | None


@dataclass(frozen=True)
class Target:
    """Where and how a delivery is sent: the endpoint's URL, state, owner and sealed secrets."""

    url: str
    status: str
    user_id: str
    secrets: SealedSecrets


@dataclass(frozen=True)
class QueuedDelivery(DeliveryKey):
    """A PENDING delivery in its endpoint's queue, with the event it carries and where it goes.

    `due`: its next attempt time has come. `probe`: it is the endpoint's earliest due delivery (in event
    order), the one a run tries first. `position`: its place in the endpoint's queue (event order, from 1).
    `queued`: how many unleased deliveries the endpoint had waiting when the queue was read.
    """

    due: bool
    probe: bool
    position: int
    queued: int
    event_type: str
    payload: str
    event_created_at: str
    event_seq: int
    target: Target


# Fixed text only (no input): the queue's columns, its endpoint's, and the "no run holds it" condition.
_QUEUE_SELECT = (
    "SELECT d.id, d.endpoint_id, d.attempt_count, d.next_attempt_at, d.next_attempt_at <= ? AS due,"
    " e.type AS event_type, e.payload, e.created_at AS event_created_at, e.rowid AS event_seq"
)
_TARGET_COLUMNS = "w.url, w.secret, w.previous_secret, w.previous_secret_until, w.status AS endpoint_status, w.user_id"
_FREE = "(d.lease_until IS NULL OR d.lease_until <= ?)"
# The endpoints with a due delivery, and each one's unleased PENDING deliveries in event order; the probe
# (due_rank 1) is its earliest due one. Rows come round-robin (every endpoint's probe, then every endpoint's
# first in line, second…), so one endpoint's long backlog cannot crowd the others out of the LIMIT.
_QUEUE_SQL = (
    "WITH due AS (SELECT d.endpoint_id, MIN(d.next_attempt_at) AS first_due FROM webhook_deliveries d"  # noqa: S608
    " WHERE d.status = 'PENDING' AND d.next_attempt_at <= ? AND " + _FREE + " GROUP BY d.endpoint_id),"
    " queue AS (" + _QUEUE_SELECT + ", due.first_due,"
    " ROW_NUMBER() OVER (PARTITION BY d.endpoint_id ORDER BY d.next_attempt_at > ?, e.created_at, e.rowid)"
    " AS due_rank,"
    " ROW_NUMBER() OVER (PARTITION BY d.endpoint_id ORDER BY e.created_at, e.rowid) AS position,"
    " COUNT(*) OVER (PARTITION BY d.endpoint_id) AS queued"
    " FROM webhook_deliveries d JOIN due ON due.endpoint_id = d.endpoint_id JOIN events e ON e.id = d.event_id"
    " WHERE d.status = 'PENDING' AND " + _FREE + ")"
    " SELECT q.*, " + _TARGET_COLUMNS + " FROM queue q JOIN webhook_endpoints w ON w.id = q.endpoint_id"
    " ORDER BY CASE WHEN q.due_rank = 1 THEN 0 ELSE q.position END, q.first_due, q.endpoint_id, q.position"
    " LIMIT ?"
)
# One endpoint's queue after a given event: the next page of a backlog being drained.
_QUEUE_AFTER_SQL = (
    _QUEUE_SELECT + ", " + _TARGET_COLUMNS + " FROM webhook_deliveries d JOIN events e ON e.id = d.event_id"
    " JOIN webhook_endpoints w ON w.id = d.endpoint_id"
    " WHERE d.endpoint_id = ? AND d.status = 'PENDING' AND "
    + _FREE
    + " AND (e.created_at > ? OR (e.created_at = ? AND e.rowid > ?)) ORDER BY e.created_at, e.rowid LIMIT ?"
)


def _queued(row: Row, *, probe: bool = False, position: int = 0, queued: int = 0) -> QueuedDelivery:
    return QueuedDelivery(
        id=row["id"],
        endpoint_id=row["endpoint_id"],
        attempt_count=int(row["attempt_count"]),
        next_attempt_at=row["next_attempt_at"],
        due=bool(row["due"]),
        probe=probe,
        position=position,
        queued=queued,
        event_type=row["event_type"],
        payload=row["payload"],
        event_created_at=row["event_created_at"],
        event_seq=int(row["event_seq"]),
        target=Target(
            url=row["url"],
            status=row["endpoint_status"],
            user_id=row["user_id"],
            secrets=SealedSecrets(
                row["endpoint_id"], row["secret"], row["previous_secret"], row["previous_secret_until"]
            ),
        ),
    )


async def send_queues(db: Database, now: datetime, limit: int) -> list[QueuedDelivery]:
    """Up to `limit` queued deliveries of the endpoints that have one due, round-robin across endpoints."""
    stamp = format_time(now)
    rows = (await db.prepare(_QUEUE_SQL).bind(stamp, stamp, stamp, stamp, stamp, limit).all()).results
    return [
        _queued(row, probe=int(row["due_rank"]) == 1, position=int(row["position"]), queued=int(row["queued"]))
        for row in rows
    ]


async def queue_after(
    db: Database, endpoint_id: str, after: QueuedDelivery | None, now: datetime, limit: int
) -> list[QueuedDelivery]:
    """The endpoint's next `limit` unleased PENDING deliveries in event order after `after` (None: from the start)."""
    stamp = format_time(now)
    created_at, seq = (after.event_created_at, after.event_seq) if after is not None else ("", -1)
    rows = (
        await db.prepare(_QUEUE_AFTER_SQL).bind(stamp, endpoint_id, stamp, created_at, created_at, seq, limit).all()
    ).results
    return [_queued(row) for row in rows]


def bring_forward_statement(db: Database, endpoint_id: str, stamp: str, since: str) -> Statement:
    """Make the endpoint's waiting deliveries due at `stamp`: it has just answered, so their backoff is moot.

    Deliveries another run recorded an attempt for since `since` (the run's start) keep their schedule.
    """
    return db.prepare(
        "UPDATE webhook_deliveries SET next_attempt_at = ?, updated_at = ? WHERE endpoint_id = ?"
        " AND status = 'PENDING' AND next_attempt_at > ? AND updated_at < ? AND (lease_until IS NULL OR lease_until <= ?)"
    ).bind(stamp, stamp, endpoint_id, stamp, since, stamp)


def claim_statement(db: Database, key: DeliveryKey, owner: str, stamp: str, lease_until: str) -> Statement:
    """Lease the delivery for one attempt if it is still as read and free; of overlapping runs one changes 1.

    Whether it may be attempted before its next attempt time (its endpoint has just answered) is the
    caller's decision; the guard only makes sure nobody attempted or rescheduled it since it was read.
    """
    return db.prepare(
        "UPDATE webhook_deliveries SET lease_until = ?, lease_owner = ?, updated_at = ?"
        " WHERE id = ? AND status = 'PENDING' AND attempt_count = ? AND next_attempt_at IS ?"
        " AND (lease_until IS NULL OR lease_until <= ?)"
    ).bind(lease_until, owner, stamp, key.id, key.attempt_count, key.next_attempt_at, stamp)


def cancel_statement(db: Database, key: DeliveryKey, stamp: str) -> Statement:
    """Cancel the delivery (its endpoint is gone) if it is still as read and no run holds it."""
    return db.prepare(
        "UPDATE webhook_deliveries SET status = 'CANCELLED', updated_at = ? WHERE id = ? AND status = 'PENDING'"
        " AND attempt_count = ? AND (lease_until IS NULL OR lease_until <= ?)"
    ).bind(stamp, key.id, key.attempt_count, stamp)


_HELD = "SELECT 1 FROM webhook_deliveries WHERE id = ? AND lease_owner = ? AND status = 'PENDING'"


@dataclass(frozen=True)
class AttemptRecord:
    """One attempt to store, and the state the delivery moves to."""

    attempt_id: str
    number: int
    started_at: str
    duration_ms: int
    status_code: int | None
    error: str | None
    status: str  # PENDING (retry later), DELIVERED or FAILED
    next_attempt_at: str | None
    # The receiver answered 410: the endpoint is disabled, with this reason, and its waiting deliveries cancelled.
    disable_reason: str | None = None


def record_statements(db: Database, key: DeliveryKey, owner: str, record: AttemptRecord, stamp: str) -> list[Statement]:
    """The attempt row and the delivery's new state, both only if `owner` still holds the lease.

    The second statement changes 1 only then; with `disable_reason`, two more follow, guarded on this
    attempt's row, so only the run that recorded the 410 disables the endpoint.
    """
    statements = [
        db.prepare(
            "INSERT INTO webhook_attempts (id, delivery_id, attempt_number, started_at, duration_ms, status_code, error)"
            f" SELECT ?, ?, ?, ?, ?, ?, ? WHERE EXISTS ({_HELD})"
        ).bind(
            record.attempt_id,
            key.id,
            record.number,
            record.started_at,
            record.duration_ms,
            record.status_code,
            record.error,
            key.id,
            owner,
        ),
        db.prepare(
            "UPDATE webhook_deliveries SET status = ?, attempt_count = ?, next_attempt_at = ?, lease_until = NULL,"
            " lease_owner = NULL, last_status_code = ?, last_error = ?, delivered_at = ?, updated_at = ?"
            " WHERE id = ? AND lease_owner = ? AND status = 'PENDING'"
        ).bind(
            record.status,
            record.number,
            record.next_attempt_at,
            record.status_code,
            record.error,
            stamp if record.status == "DELIVERED" else None,
            stamp,
            key.id,
            owner,
        ),
    ]
    if record.disable_reason is not None:
        statements += [
            db.prepare(
                "UPDATE webhook_endpoints SET status = 'DISABLED', disabled_reason = ?, updated_at = ?"
                " WHERE id = ? AND status = 'ACTIVE' AND EXISTS (SELECT 1 FROM webhook_attempts WHERE id = ?)"
            ).bind(record.disable_reason, stamp, key.endpoint_id, record.attempt_id),
            # Deliveries another run holds right now finish their attempt; the claim step cancels them after.
            db.prepare(
                "UPDATE webhook_deliveries SET status = 'CANCELLED', updated_at = ? WHERE endpoint_id = ?"
                " AND status = 'PENDING' AND (lease_until IS NULL OR lease_until <= ?)"
                " AND EXISTS (SELECT 1 FROM webhook_attempts WHERE id = ?)"
            ).bind(stamp, key.endpoint_id, stamp, record.attempt_id),
        ]
    return statements


# ---- what the API shows of deliveries: the backlog, and pages of deliveries with their attempts

# Why an attempt failed, as the owner sees it: a fixed vocabulary, never the receiver's words.
ATTEMPT_REASONS = (
    "http_status",
    "timeout",
    "connection_refused",
    "connection_error",
    "dns_error",
    "tls_error",
    "blocked_address",
    "url_not_allowed",
    "invalid_payload",
    "request_failed",
)
# Free-text errors recorded before the vocabulary existed (migration 0009 rewrites them the same way).
_LEGACY_REASONS = (
    ("HTTP ", "http_status"),
    ("timeout", "timeout"),
    ("URL not allowed", "url_not_allowed"),
    ("event payload is not valid JSON", "invalid_payload"),
)


def public_reason(error: str | None) -> str | None:
    """An attempt's recorded error as one of ATTEMPT_REASONS (older free-text errors are classified)."""
    if error is None or error in ATTEMPT_REASONS:
        return error
    for prefix, reason in _LEGACY_REASONS:
        if error.startswith(prefix):
            return reason
    if error.startswith("connection error"):
        return "connection_refused" if "refused" in error.lower() else "connection_error"
    return "request_failed"


@dataclass(frozen=True)
class Backlog:
    """An endpoint's PENDING deliveries: how many, since when the oldest waits, when the next attempt is due."""

    pending: int
    oldest_pending_at: str | None
    next_attempt_at: str | None

    def oldest_pending_age_seconds(self, now: datetime) -> int | None:
        if self.oldest_pending_at is None:
            return None
        return max(0, int((now - parse_time(self.oldest_pending_at)).total_seconds()))


def backlog_statement(db: Database, caller: Caller, endpoint_id: str) -> Statement:
    """The caller's endpoint's backlog (nothing counted for anyone else's endpoint)."""
    return db.prepare(
        "SELECT COUNT(*) AS pending, MIN(d.created_at) AS oldest_pending_at,"  # noqa: S608
        " MIN(d.next_attempt_at) AS next_attempt_at"
        " FROM webhook_deliveries d WHERE d.endpoint_id = ? AND d.status = 'PENDING' AND EXISTS ("
        f"SELECT 1 FROM webhook_endpoints w WHERE w.id = d.endpoint_id AND w.user_id = {caller.sql})"
    ).bind(endpoint_id, *caller.params)


def backlog_from(result: QueryResult) -> Backlog:
    row = result.results[0] if result.results else {}
    return Backlog(int(row.get("pending") or 0), row.get("oldest_pending_at"), row.get("next_attempt_at"))


def _encode_cursor(created_at: str, delivery_id: str) -> str:
    return base64.urlsafe_b64encode(f"{created_at}|{delivery_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[str, str]:
    """A deliveries page cursor; 400 E9004 when malformed."""
    try:
        created_at, delivery_id = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode().split("|", 1)
    except (ValueError, UnicodeDecodeError):
        raise ApiError(
            "E9004", details={"fields": [{"field": "cursor", "message": "invalid cursor", "type": "value_error"}]}
        ) from None
    return created_at, delivery_id


@dataclass(frozen=True)
class Attempt:
    """One delivery attempt as the API shows it: the reason is classified, never the receiver's answer."""

    attempt_number: int
    started_at: str
    duration_ms: int
    status_code: int | None
    error: str | None

    def public(self) -> dict[str, Any]:
        return {
            "attempt_number": self.attempt_number,
            "started_at": self.started_at,
            "duration_ms": self.duration_ms,
            "status_code": self.status_code,
            "error": self.error,
        }


@dataclass(frozen=True)
class Delivery:
    """One event's delivery to an endpoint, with its attempts."""

    id: str
    event_id: str
    event_type: str
    status: str
    attempt_count: int
    next_attempt_at: str | None
    last_status_code: int | None
    last_error: str | None
    created_at: str
    updated_at: str
    delivered_at: str | None
    attempts: tuple[Attempt, ...]

    def public(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "event_id": self.event_id,
            "event_type": self.event_type,
            "status": self.status,
            "attempt_count": self.attempt_count,
            "next_attempt_at": self.next_attempt_at,
            "last_status_code": self.last_status_code,
            "last_error": self.last_error,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "delivered_at": self.delivered_at,
            # The webhook-id header value, stable across retries.
            "webhook_id": "msg_" + self.id,
            "attempts": [attempt.public() for attempt in self.attempts],
        }


@dataclass(frozen=True)
class DeliveryPage:
    items: list[Delivery]
    next_cursor: str | None


def deliveries_statements(
    db: Database, caller: Caller, endpoint_id: str, *, limit: int, cursor: str | None
) -> list[Statement]:
    """The endpoint (ownership), a page of its deliveries (one extra row tells whether more follow), and the
    attempts of that page: one batch, so GET /webhooks/{id}/deliveries rides in the auth batch.

    A malformed cursor raises 400 E9004.
    """
    page = " FROM webhook_deliveries d WHERE d.endpoint_id = ?"
    params: list[Any] = [endpoint_id]
    if cursor:
        created_at, delivery_id = decode_cursor(cursor)
        page += " AND (d.created_at < ? OR (d.created_at = ? AND d.id < ?))"
        params += [created_at, created_at, delivery_id]
    page += " ORDER BY d.created_at DESC, d.id DESC LIMIT ?"
    columns = (
        "d.id, d.event_id, e.type AS event_type, d.status, d.attempt_count, d.next_attempt_at,"
        " d.last_status_code, d.last_error, d.created_at, d.updated_at, d.delivered_at"
    )
    # The page's query is fixed text plus bound values; the join to events only adds the type.
    deliveries = (
        f"SELECT {columns} FROM webhook_deliveries d JOIN events e ON e.id = d.event_id"  # noqa: S608
        f" WHERE d.id IN (SELECT d.id{page}) ORDER BY d.created_at DESC, d.id DESC"
    )
    attempt_columns = "delivery_id, attempt_number, started_at, duration_ms, status_code, error"
    attempts = f"SELECT {attempt_columns} FROM webhook_attempts WHERE delivery_id IN (SELECT d.id{page})"  # noqa: S608
    attempts += " ORDER BY attempt_number"
    return [
        endpoint_statement(db, caller, endpoint_id),
        db.prepare(deliveries).bind(*params, limit + 1),
        db.prepare(attempts).bind(*params, limit),
    ]


def deliveries_from(results: Sequence[QueryResult], limit: int) -> DeliveryPage:
    endpoint_rows, delivery_rows, attempt_rows = results
    endpoint_from(endpoint_rows)
    rows = delivery_rows.results
    next_cursor = _encode_cursor(rows[limit - 1]["created_at"], rows[limit - 1]["id"]) if len(rows) > limit else None
    attempts: dict[str, list[Attempt]] = {row["id"]: [] for row in rows[:limit]}
    for row in attempt_rows.results:
        if row["delivery_id"] in attempts:
            attempts[row["delivery_id"]].append(
                Attempt(
                    attempt_number=int(row["attempt_number"]),
                    started_at=row["started_at"],
                    duration_ms=int(row["duration_ms"]),
                    status_code=row["status_code"],
                    error=public_reason(row["error"]),
                )
            )
    items = [
        Delivery(
            id=row["id"],
            event_id=row["event_id"],
            event_type=row["event_type"],
            status=row["status"],
            attempt_count=int(row["attempt_count"]),
            next_attempt_at=row["next_attempt_at"],
            last_status_code=row["last_status_code"],
            last_error=public_reason(row["last_error"]),
            created_at=row["created_at"],
            updated_at=row["updated_at"],
            delivered_at=row["delivered_at"],
            attempts=tuple(attempts[row["id"]]),
        )
        for row in rows[:limit]
    ]
    return DeliveryPage(items, next_cursor)


# ---- notifications: the due list, leased claims, outcomes


@dataclass(frozen=True)
class DueNotification:
    """A PENDING notification whose time has come, with what its message needs."""

    id: str
    user_id: str
    channel: str
    template: str
    attempt_count: int
    payload: str
    challenge_id: str | None
    email: str | None
    phone: str | None
    title: str | None


async def due_notifications(db: Database, stamp: str, limit: int) -> list[DueNotification]:
    rows = (
        await db.prepare(
            "SELECT n.id, n.user_id, n.channel, n.template, n.attempt_count, e.payload, e.challenge_id, u.email,"
            " u.phone, c.title FROM notifications n JOIN events e ON e.id = n.event_id JOIN users u ON u.id = n.user_id"
            " LEFT JOIN challenges c ON c.id = e.challenge_id"
            " WHERE n.status = 'PENDING' AND n.next_attempt_at <= ? AND (n.lease_until IS NULL OR n.lease_until <= ?)"
            " ORDER BY n.next_attempt_at, n.rowid LIMIT ?"
        )
        .bind(stamp, stamp, limit)
        .all()
    ).results
    return [
        DueNotification(
            id=row["id"],
            user_id=row["user_id"],
            channel=row["channel"],
            template=row["template"],
            attempt_count=int(row["attempt_count"]),
            payload=row["payload"],
            challenge_id=row["challenge_id"],
            email=row["email"],
            phone=row["phone"],
            title=row["title"],
        )
        for row in rows
    ]


def claim_notification_statement(
    db: Database, notification: DueNotification, owner: str, stamp: str, lease_until: str
) -> Statement:
    """Lease the notification for one attempt; of overlapping runs exactly one changes 1."""
    return db.prepare(
        "UPDATE notifications SET lease_until = ?, lease_owner = ?, updated_at = ?"
        " WHERE id = ? AND status = 'PENDING' AND attempt_count = ? AND next_attempt_at <= ?"
        " AND (lease_until IS NULL OR lease_until <= ?)"
    ).bind(lease_until, owner, stamp, notification.id, notification.attempt_count, stamp, stamp)


def record_notification_statement(
    db: Database,
    notification_id: str,
    owner: str,
    *,
    status: str,
    attempt_count: int,
    next_attempt_at: str | None,
    provider_message_id: str | None,
    error: str | None,
    stamp: str,
) -> Statement:
    """The attempt's outcome, only if `owner` still holds the lease (changes 1 then)."""
    return db.prepare(
        "UPDATE notifications SET status = ?, attempt_count = ?, next_attempt_at = ?, lease_until = NULL,"
        " lease_owner = NULL, provider_message_id = ?, error = ?, updated_at = ?"
        " WHERE id = ? AND lease_owner = ? AND status = 'PENDING'"
    ).bind(status, attempt_count, next_attempt_at, provider_message_id, error, stamp, notification_id, owner)
