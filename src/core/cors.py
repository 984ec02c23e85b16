"""CORS: allowed origins from CORS_ALLOW_ORIGINS (comma list or *); preflights answered; never credentials."""

from __future__ import annotations

from core.config import Env
from core.http import Request, Response

ALLOWED_HEADERS = "authorization, content-type, idempotency-key, x-request-id, x-d1-bookmark"
EXPOSED_HEADERS = (
    "x-request-id, retry-after, x-ratelimit-limit, x-ratelimit-remaining, x-ratelimit-reset, x-d1-bookmark"
)
MAX_AGE_SECONDS = "600"


def allowed_origin(env: Env, origin: str) -> str | None:
    """The value for Access-Control-Allow-Origin, or None when this origin may not read responses."""
    if not origin:
        return None
    setting = env.get("CORS_ALLOW_ORIGINS", "*").strip() or "*"
    if setting == "*":
        return "*"
    allowed = {item.strip().rstrip("/") for item in setting.split(",") if item.strip()}
    return origin if origin.rstrip("/") in allowed else None


def is_preflight(request: Request) -> bool:
    return (
        request.method == "OPTIONS"
        and bool(request.header("origin"))
        and bool(request.header("access-control-request-method"))
    )


def preflight(request: Request, env: Env, methods: list[str]) -> Response:
    """204 with the allowed methods for this path; a disallowed origin gets no CORS headers at all."""
    response = Response.empty(204)
    if not methods:
        response.status = 404
        return response
    if allowed_origin(env, request.header("origin")) is not None:
        response.headers["access-control-allow-methods"] = ", ".join([*methods, "OPTIONS"])
        response.headers["access-control-allow-headers"] = ALLOWED_HEADERS
        response.headers["access-control-max-age"] = MAX_AGE_SECONDS
    return response


def apply(request: Request, response: Response, env: Env) -> None:
    origin = allowed_origin(env, request.header("origin"))
    if origin is None:
        return
    response.headers["access-control-allow-origin"] = origin
    response.headers["access-control-expose-headers"] = EXPOSED_HEADERS
    if origin != "*":
        response.headers["vary"] = "Origin"
