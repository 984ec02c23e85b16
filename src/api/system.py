"""System endpoints: /health (never behind a flag) and /openapi.json."""

from __future__ import annotations

from typing import Literal

from core.clock import format_time
from core.context import RequestContext
from core.http import Request, Response
from core.schemas import OutModel

VERSION = "2.0.0"


class Health(OutModel):
    status: Literal["ok", "unavailable"]
    database: Literal["ok", "error"]
    version: str
    time: str


async def health(request: Request, ctx: RequestContext) -> Response:
    try:
        healthy = await ctx.db.prepare("SELECT 1 AS ok").first("ok") == 1
    except Exception:
        healthy = False
    body = Health(
        status="ok" if healthy else "unavailable",
        database="ok" if healthy else "error",
        version=VERSION,
        time=format_time(ctx.now()),
    )
    if not healthy:
        ctx.services.logger.error("health_database_unreachable", request_id=ctx.request_id)
    return Response.json(body.model_dump(), 200 if healthy else 503)
