"""The /webhooks routes, with the flag, auth and models of each."""

from __future__ import annotations

from core import flags
from core.routing import Route
from relay import api

ROUTES: list[Route] = [
    Route(
        "POST",
        "/webhooks",
        api.create_webhook,
        "Register a webhook endpoint; the signing secret is shown only in this response",
        "webhooks",
        flag=flags.WEBHOOKS,
        auth="user",
        body=api.WebhookCreate,
        response=api.WebhookEndpointCreated,
        status=201,
        rate_limit="webhooks",
        errors=("E6001",),
    ),
    Route(
        "GET",
        "/webhooks",
        api.list_webhooks,
        "The caller's webhook endpoints (never their secrets)",
        "webhooks",
        flag=flags.WEBHOOKS,
        auth="user",
        response=api.WebhookEndpointList,
        rate_limit="webhooks",
        extra=api.LIST_EXTRA,
    ),
    Route(
        "DELETE",
        "/webhooks/{webhook_id}",
        api.delete_webhook,
        "Delete a webhook endpoint; deliveries still waiting are cancelled",
        "webhooks",
        flag=flags.WEBHOOKS,
        auth="user",
        status=204,
        rate_limit="webhooks",
        errors=("E6002",),
    ),
    Route(
        "POST",
        "/webhooks/{webhook_id}/rotate-secret",
        api.rotate_secret,
        "Replace the endpoint's signing secret; the new one is shown only in this response",
        "webhooks",
        flag=flags.WEBHOOKS,
        auth="user",
        response=api.WebhookSecret,
        rate_limit="webhooks",
        errors=("E6002",),
    ),
    Route(
        "GET",
        "/webhooks/{webhook_id}/deliveries",
        api.list_deliveries,
        "The endpoint's deliveries, newest first, with every attempt (status code, duration, error)",
        "webhooks",
        flag=flags.WEBHOOKS,
        auth="user",
        response=api.WebhookDeliveryList,
        rate_limit="webhooks",
        errors=("E6002",),
        query=(("limit", "1 to 50, default 20"), ("cursor", "next_cursor of the previous page")),
        extra=api.DELIVERIES_EXTRA,
    ),
]
