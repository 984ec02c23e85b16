"""The relay's scheduled work and the after-response hook: fan out new events, then send what is due."""

from __future__ import annotations

import asyncio

from core import flags
from core.context import Services
from core.errors import ApiError
from relay import delivery, notify, webhooks

# Sends started by a request must finish inside ctx.waitUntil's budget (30 s after the response): at most
# ten attempts, none started after ten seconds.
AFTER_RESPONSE_SEND_LIMIT = 10
AFTER_RESPONSE_BUDGET_SECONDS = 10.0


async def dispatch_pending(
    services: Services, *, send_limit: int | None = None, budget_seconds: float = delivery.SEND_BUDGET_SECONDS
) -> dict[str, int]:
    """Fan out undispatched events (≤ 100), then attempt due webhook deliveries and notifications, each
    within its bounds (`send_limit` for both when given, else each one's own)."""
    fanned = await delivery.fan_out(services)
    webhooks, notifications = await asyncio.gather(
        delivery.send_due(services, limit=send_limit or delivery.SEND_LIMIT, budget_seconds=budget_seconds),
        notify.send_due(services, limit=send_limit or notify.SEND_LIMIT),
    )
    report = {f"fanout_{name}": value for name, value in fanned.items()}
    report |= {f"webhooks_{name}": value for name, value in webhooks.items()}
    report |= {f"notifications_{name}": value for name, value in notifications.items()}
    return report


async def run(services: Services) -> dict[str, int]:
    """The cron job (every minute): the same work as after a request, with the larger send bound, then
    re-sealing webhook secrets not yet under the current key (plain legacy rows, a rotated key)."""
    report = await dispatch_pending(services)
    try:
        resealed = await webhooks.rewrap_secrets(services)
    except ApiError as error:
        # No key configured: delivery already logged it; the secrets stay as they are until one is.
        services.logger.error("webhook_secret_key_unavailable", variable=error.details.get("variable"))
        resealed = {"resealed": 0, "unreadable": 0}
    return report | {f"secrets_{name}": value for name, value in resealed.items()}


def relay_enabled(services: Services) -> bool:
    """False only when webhooks and notifications are both fully off (no rollout at all)."""
    env = services.env
    return any(flags.rollout_percent(env.get(name) or None) > 0 for name in (flags.WEBHOOKS, flags.NOTIFICATIONS))


async def _dispatch_quietly(services: Services) -> None:
    try:
        await dispatch_pending(
            services, send_limit=AFTER_RESPONSE_SEND_LIMIT, budget_seconds=AFTER_RESPONSE_BUDGET_SECONDS
        )
    except Exception as error:
        # Nothing is lost: the events stay undispatched / the deliveries due, and the cron job picks them up.
        services.logger.error("relay_after_response_failed", error_type=type(error).__name__)


# Off only where a caller wants to drive dispatch by hand (most relay tests); production leaves it on.
AFTER_RESPONSE_ENV = "RELAY_DISPATCH_AFTER_RESPONSE"


def after_response(services: Services) -> None:
    """Schedule the first attempts right after the response (ctx.waitUntil on Workers, a task locally).

    The request pipeline calls this once after any request that may have written events (a mutating
    method with a 2xx answer is enough); it returns at once and never raises.
    """
    if not relay_enabled(services) or not services.env.bool(AFTER_RESPONSE_ENV, default=True):
        return
    services.defer(_dispatch_quietly(services))
