"""HTTP models and handlers of /webhooks: register, list, delete, rotate the secret, read delivery attempts."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import Field

from core.auth import PRELOAD, Caller, require_user
from core.config import Env
from core.context import RequestContext
from core.errors import ApiError
from core.http import Request, Response
from core.schemas import OutModel, StrictModel
from core.validation import page_limit
from db.port import Database, Statement
from relay import secretbox, webhooks
from relay.outbox import EVENT_TYPES

EventType = Literal[EVENT_TYPES]  # type: ignore[valid-type]
DeliveryStatus = Literal["PENDING", "DELIVERED", "FAILED", "CANCELLED"]
AttemptReason = Literal[webhooks.ATTEMPT_REASONS]  # type: ignore[valid-type]
REASON_HELP = (
    "Why the attempt failed, classified (the receiver's answer is never shown): http_status (see status_code),"
    " timeout, connection_refused, connection_error, dns_error, tls_error, blocked_address (the host resolved"
    " to a private, loopback, link-local or metadata address), url_not_allowed, invalid_payload, request_failed"
)


class WebhookCreate(StrictModel):
    # The URL rules (scheme, host, length, credentials) answer E6001 themselves, so no length cap here.
    url: str = Field(description="https URL the events are POSTed to")
    description: str | None = Field(default=None, max_length=500)
    event_types: list[EventType] | None = Field(
        default=None, max_length=64, description="Only these event types; leave out for every type"
    )


class WebhookEndpointOut(OutModel):
    id: str
    url: str
    description: str | None
    event_types: list[str] | None
    status: Literal["ACTIVE", "DISABLED"]
    disabled_reason: str | None
    created_at: str
    updated_at: str


class WebhookBacklog(OutModel):
    pending: int = Field(description="Deliveries waiting to be sent (PENDING), retries included")
    oldest_pending_age_seconds: int | None = Field(
        description="Seconds the oldest waiting delivery has waited since it was queued; null when none waits"
    )
    next_attempt_at: str | None = Field(
        description="When the next waiting delivery is due; null when none waits. After a receiver answers"
        " again, its whole backlog follows in event order within the run (up to the run's bounds)"
    )


class WebhookEndpointDetail(WebhookEndpointOut):
    backlog: WebhookBacklog


class WebhookEndpointCreated(WebhookEndpointOut):
    secret: str = Field(description="whsec_… signing secret; shown only here and on rotation")


class WebhookEndpointList(OutModel):
    items: list[WebhookEndpointOut]


class WebhookSecret(OutModel):
    id: str
    secret: str = Field(
        description="The new whsec_… signing secret; for 24 h deliveries carry both signatures (new, then old)"
    )


class WebhookAttemptOut(OutModel):
    attempt_number: int
    started_at: str
    duration_ms: int
    status_code: int | None
    error: AttemptReason | None = Field(description=REASON_HELP)


class WebhookDeliveryOut(OutModel):
    id: str
    webhook_id: str = Field(description="The webhook-id header value, stable across retries")
    event_id: str
    event_type: str
    status: DeliveryStatus
    attempt_count: int
    next_attempt_at: str | None
    last_status_code: int | None
    last_error: AttemptReason | None = Field(description=REASON_HELP)
    created_at: str
    updated_at: str
    delivered_at: str | None
    attempts: list[WebhookAttemptOut]


class WebhookDeliveryList(OutModel):
    items: list[WebhookDeliveryOut]
    next_cursor: str | None


async def create_webhook(request: Request, ctx: RequestContext) -> Response:
    principal = require_user(ctx.principal)
    body: WebhookCreate = ctx.body
    endpoint, secret = await webhooks.create_endpoint(
        ctx.db,
        secretbox.key_ring(ctx.env),
        principal.user_id or "",
        body.url,
        body.description,
        body.event_types,
        ctx.now(),
        allow_insecure=ctx.env.bool("ALLOW_INSECURE_WEBHOOKS"),
    )
    return Response.json({**endpoint.public(), "secret": secret}, 201)


async def list_webhooks(request: Request, ctx: RequestContext) -> Response:
    principal = require_user(ctx.principal)
    endpoints = await webhooks.list_endpoints(ctx.db, principal)
    return Response.json({"items": [endpoint.public() for endpoint in endpoints]})


async def get_webhook(request: Request, ctx: RequestContext) -> Response:
    principal = require_user(ctx.principal)
    endpoint, backlog = await webhooks.endpoint_with_backlog(ctx.db, principal, request.path_params["webhook_id"])
    return Response.json(
        {
            **endpoint.public(),
            "backlog": {
                "pending": backlog.pending,
                "oldest_pending_age_seconds": backlog.oldest_pending_age_seconds(ctx.now()),
                "next_attempt_at": backlog.next_attempt_at,
            },
        }
    )


async def delete_webhook(request: Request, ctx: RequestContext) -> Response:
    principal = require_user(ctx.principal)
    await webhooks.delete_endpoint(ctx.db, principal.user_id or "", request.path_params["webhook_id"], ctx.now())
    return Response.empty(204)


async def rotate_secret(request: Request, ctx: RequestContext) -> Response:
    principal = require_user(ctx.principal)
    endpoint_id = request.path_params["webhook_id"]
    ring = secretbox.key_ring(ctx.env)
    overlap = webhooks.rotation_overlap(ctx.env)
    secret = await webhooks.rotate_secret(ctx.db, ring, principal.user_id or "", endpoint_id, ctx.now(), overlap)
    return Response.json({"id": endpoint_id, "secret": secret})


def _limit(raw: str) -> int:
    return page_limit(raw, maximum=webhooks.MAX_DELIVERY_PAGE)


def _page(request: Request) -> tuple[int, str | None]:
    """The page asked for: 400 E9004 for a limit out of range (a malformed cursor fails when it is read)."""
    query = request.query
    return _limit(query.get("limit", str(webhooks.DEFAULT_DELIVERY_PAGE))), query.get("cursor") or None


async def list_deliveries(request: Request, ctx: RequestContext) -> Response:
    principal = require_user(ctx.principal)
    limit, cursor = _page(request)
    page = await webhooks.list_deliveries(
        ctx.db, principal, request.path_params["webhook_id"], limit=limit, cursor=cursor
    )
    return Response.json({"items": [item.public() for item in page.items], "next_cursor": page.next_cursor})


# The read routes' queries ride in the auth lookup's batch (core.auth.Preload): auth + reads = one round trip.
def _preload_list(env: Env, db: Database, request: Request, now: datetime, caller: Caller) -> list[Statement]:
    return [webhooks.endpoints_statement(db, caller)]


def _preload_endpoint(env: Env, db: Database, request: Request, now: datetime, caller: Caller) -> list[Statement]:
    return webhooks.endpoint_with_backlog_statements(db, caller, request.path_params.get("webhook_id", ""))


def _preload_deliveries(env: Env, db: Database, request: Request, now: datetime, caller: Caller) -> list[Statement]:
    # A bad limit or cursor reads nothing here: the handler then raises its 400 itself, after auth.
    try:
        limit, cursor = _page(request)
        return webhooks.deliveries_statements(
            db, caller, request.path_params.get("webhook_id", ""), limit=limit, cursor=cursor
        )
    except ApiError:
        return []


LIST_EXTRA: dict[str, Any] = {PRELOAD: _preload_list}
DELIVERIES_EXTRA: dict[str, Any] = {PRELOAD: _preload_deliveries}
ENDPOINT_EXTRA: dict[str, Any] = {PRELOAD: _preload_endpoint}
