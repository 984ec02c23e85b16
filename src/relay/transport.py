"""Outbound HTTP toolkit shared by webhook delivery and notifications: bounded POSTs, timeouts, backoff, reasons."""

from __future__ import annotations

import asyncio
import email.utils
import random
import re
import socket
import ssl
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx

from core.config import Env
from relay.webhooks import BlockedAddress, ResolutionFailed

JITTER = 0.1
RETRY_AFTER_CAP_SECONDS = 36000
DEFAULT_TIMEOUT_SECONDS = 10.0
MAX_TIMEOUT_SECONDS = 30.0
# Receivers' answers are read only this far (and never shown): a huge body must not cost memory.
MAX_RESPONSE_BYTES = 4096
MAX_ERROR_CHARS = 300
_UNPRINTABLE = re.compile(r"[^\x20-\x7e]+")


def clean_text(text: str, limit: int = MAX_ERROR_CHARS) -> str:
    """Printable ASCII on one line, truncated: safe to store and show."""
    cleaned = " ".join(_UNPRINTABLE.sub(" ", text).split())
    return cleaned if len(cleaned) <= limit else cleaned[: limit - 3] + "..."


def timeout_setting(env: Env, name: str, default: float) -> float:
    """A timeout in seconds from config (fractions allowed), clamped to (0, 30]."""
    raw = env.get(name).strip()
    try:
        value = float(raw) if raw else default
    except ValueError:
        value = default
    if not 0 < value < float("inf"):
        value = default
    return min(value, MAX_TIMEOUT_SECONDS)


def retry_after_seconds(value: str | None, now: datetime) -> float | None:
    """Retry-After as seconds from now (delta-seconds or an HTTP date), capped; None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():
        seconds = float(int(value[:12]))
    else:
        try:
            moment = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError, OverflowError):
            return None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        seconds = (moment - now).total_seconds()
    return max(0.0, min(seconds, float(RETRY_AFTER_CAP_SECONDS)))


def backoff(attempt_number: int, retry_after: float | None, delays: Sequence[int]) -> float | None:
    """Seconds to wait after attempt `attempt_number` failed, with ±10 % jitter; None when it was the last."""
    if attempt_number > len(delays):
        return None
    delay = delays[attempt_number - 1] * (1 + random.uniform(-JITTER, JITTER))
    if retry_after is not None:
        delay = max(delay, retry_after)
    return delay


def failure_reason(error: BaseException) -> str:
    """The classified reason (one of webhooks.ATTEMPT_REASONS) for the exception an attempt ended with."""
    chain: list[BaseException] = []
    current: BaseException | None = error
    while current is not None and current not in chain:
        chain.append(current)
        current = current.__cause__ or current.__context__
    for item in chain:
        if isinstance(item, BlockedAddress):
            return "blocked_address"
        if isinstance(item, ResolutionFailed | socket.gaierror):
            return "dns_error"
        if isinstance(item, TimeoutError | httpx.TimeoutException):
            return "timeout"
        if isinstance(item, ssl.SSLError | ssl.CertificateError):
            return "tls_error"
        if isinstance(item, ConnectionRefusedError):
            return "connection_refused"
    if any("refused" in str(item).lower() for item in chain):
        return "connection_refused"
    if any(isinstance(item, httpx.TransportError | OSError) for item in chain):
        return "connection_error"
    return "request_failed"


@dataclass
class HttpResult:
    """One outbound POST: status (None when no answer), time taken, and at most a few KiB of the answer.

    `error` is a one-line description for operators' records (notifications); `reason` is the classified
    form an owner may see (webhooks.ATTEMPT_REASONS).
    """

    status_code: int | None
    duration_ms: int
    error: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    reason: str | None = None

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


async def post_bounded(
    http: httpx.AsyncClient, url: str, *, seconds: float, max_bytes: int, **request: Any
) -> HttpResult:
    """POST without following redirects, within `seconds` overall, reading at most `max_bytes` back."""
    started = time.perf_counter()

    async def exchange() -> tuple[int, dict[str, str], bytes]:
        async with http.stream(
            "POST", url, timeout=httpx.Timeout(seconds), follow_redirects=False, **request
        ) as response:
            chunks: list[bytes] = []
            size = 0
            async for chunk in response.aiter_raw():
                chunks.append(chunk)
                size += len(chunk)
                if size >= max_bytes:
                    break  # leaving the block closes the connection: the rest is never read
            wanted = {"retry-after", "content-type"}
            headers = {name.lower(): value for name, value in response.headers.items() if name.lower() in wanted}
            return response.status_code, headers, b"".join(chunks)[:max_bytes]

    def elapsed() -> int:
        return round((time.perf_counter() - started) * 1000)

    try:
        # httpx's timeouts bound each read, not the whole exchange: a slow drip must not hold us longer.
        status, headers, body = await asyncio.wait_for(exchange(), seconds)
    except (TimeoutError, httpx.TimeoutException):
        return HttpResult(None, elapsed(), f"timeout after {seconds:g} s", reason="timeout")
    except BlockedAddress:
        return HttpResult(None, elapsed(), "the host resolved to a non-public address", reason="blocked_address")
    except httpx.HTTPError as error:
        text = clean_text(f"connection error ({type(error).__name__}): {error}")
        return HttpResult(None, elapsed(), text, reason=failure_reason(error))
    except Exception as error:  # a malformed answer or URL must become a recorded failure, never a crash
        return HttpResult(None, elapsed(), f"request failed ({type(error).__name__})", reason=failure_reason(error))
    return HttpResult(status, elapsed(), None, headers, body, reason=None if 200 <= status < 300 else "http_status")
