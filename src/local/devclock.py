"""Development-only clock offset: DEV_CLOCK_OFFSET_SECONDS and /dev/clock, served by the local server only.

The local server runs on an OffsetClock when DEV_CLOCK_OFFSET_SECONDS is set (e.g. `0` in .dev.vars); then
`GET /dev/clock` tells the server's time and `POST /dev/clock {"advance_seconds": n}` moves it forward, so a
test or a person can walk retries and deadlines that span hours (webhook backoff, timeouts) through the
real server and its cron URL. The Worker (src/entry.py) never builds this clock and never routes /dev/clock:
there the variable is ignored and the path is an unknown route (404).
"""

from __future__ import annotations

import math
from typing import Any

from core.clock import OffsetClock, format_time
from core.config import Env
from core.errors import ApiError
from core.http import Request, Response

DEV_CLOCK_ENV = "DEV_CLOCK_OFFSET_SECONDS"
DEV_CLOCK_PATH = "/dev/clock"
# About ten years: far beyond any schedule, short of datetime's range.
MAX_OFFSET_SECONDS = 10 * 366 * 86400


def _invalid(field: str, message: str) -> ApiError:
    return ApiError("E9004", details={"fields": [{"field": field, "message": message, "type": "value_error"}]})


def _seconds(value: Any, field: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise _invalid(field, "a number of seconds")
    if not 0 <= value <= MAX_OFFSET_SECONDS:
        raise _invalid(field, f"between 0 and {MAX_OFFSET_SECONDS} seconds (the clock only moves forward)")
    return float(value)


def initial_offset(env: Env) -> float | None:
    """The configured starting offset; None when the variable is unset (no dev clock at all)."""
    raw = env.get(DEV_CLOCK_ENV).strip()
    if not raw:
        return None
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"{DEV_CLOCK_ENV} must be a number of seconds >= 0, not {raw!r}") from None
    if not (math.isfinite(value) and 0 <= value <= MAX_OFFSET_SECONDS):
        raise ValueError(f"{DEV_CLOCK_ENV} must be between 0 and {MAX_OFFSET_SECONDS}")
    return value


def _state(clock: OffsetClock) -> Response:
    return Response.json({"now": format_time(clock.now()), "offset_seconds": clock.offset_seconds})


async def handle(request: Request, clock: OffsetClock) -> Response:
    """GET: the server's time and offset. POST {"advance_seconds": n}: move the clock n seconds forward."""
    try:
        if request.method == "GET":
            return _state(clock)
        if request.method != "POST":
            raise ApiError("E9011", headers={"allow": "GET, POST"})
        body = request.json()
        if not isinstance(body, dict) or set(body) != {"advance_seconds"}:
            raise _invalid("advance_seconds", 'send {"advance_seconds": <seconds>}')
        advance = _seconds(body["advance_seconds"], "advance_seconds")
        if clock.offset_seconds + advance > MAX_OFFSET_SECONDS:
            raise _invalid("advance_seconds", f"the offset may not exceed {MAX_OFFSET_SECONDS} seconds")
        clock.advance(advance)
        return _state(clock)
    except ApiError as error:
        return Response.error(error)
