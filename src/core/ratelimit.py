"""Rate limits of SPEC §13: an exact sliding-window limiter locally, the Rate Limiting binding on Workers."""

from __future__ import annotations

import math
from collections import OrderedDict, deque
from dataclasses import dataclass
from typing import Any, Protocol

from core.config import Env
from core.errors import ApiError

PERIOD_SECONDS = 60
# group → (default limit per period, keyed by "ip" or "user")
GROUPS: dict[str, tuple[int, str]] = {
    "gatekeeper": (60, "ip"),
    "challenges": (30, "user"),
    "webhooks": (10, "user"),
    "accounts": (30, "user"),
}
# The Workers binding for each group, declared in wrangler.toml [[ratelimits]]. /me ("accounts") borrows the
# challenges binding (same 30/min/user) rather than needing one more namespace; its keys are its own.
BINDINGS = {
    "gatekeeper": "RATE_LIMIT_GATEKEEPER",
    "challenges": "RATE_LIMIT_CHALLENGES",
    "webhooks": "RATE_LIMIT_WEBHOOKS",
    "accounts": "RATE_LIMIT_CHALLENGES",
}
MAX_TRACKED_KEYS = 100_000


@dataclass(frozen=True)
class Decision:
    allowed: bool
    limit: int
    remaining: int
    reset_seconds: int

    def headers(self) -> dict[str, str]:
        headers = {
            "x-ratelimit-limit": str(self.limit),
            "x-ratelimit-remaining": str(self.remaining),
            "x-ratelimit-reset": str(self.reset_seconds),
        }
        if not self.allowed:
            headers["retry-after"] = str(max(self.reset_seconds, 1))
        return headers


class RateLimiter(Protocol):
    async def hit(self, group: str, key: str, limit: int, now: float) -> Decision: ...


def limit_for(env: Env, group: str) -> int:
    """RATE_LIMIT_<GROUP>_PER_MINUTE overrides the default for the local limiter (tests, benches).

    On Workers the [[ratelimits]] binding of the group decides (its name is RATE_LIMIT_<GROUP>).
    """
    return env.int(f"RATE_LIMIT_{group.upper()}_PER_MINUTE", GROUPS[group][0])


def subject(group: str, user_id: str | None, client_ip: str) -> str:
    if GROUPS[group][1] == "user" and user_id:
        return f"user:{user_id}"
    return f"ip:{client_ip or 'unknown'}"


class SlidingWindowLimiter:
    """Exact: counts the requests of the last PERIOD_SECONDS per key; memory bounded by MAX_TRACKED_KEYS."""

    def __init__(self) -> None:
        self._hits: OrderedDict[tuple[str, str], deque[float]] = OrderedDict()

    async def hit(self, group: str, key: str, limit: int, now: float) -> Decision:
        bucket_key = (group, key)
        hits = self._hits.get(bucket_key)
        if hits is None:
            hits = self._hits[bucket_key] = deque()
            if len(self._hits) > MAX_TRACKED_KEYS:
                self._hits.popitem(last=False)
        else:
            self._hits.move_to_end(bucket_key)
        while hits and hits[0] <= now - PERIOD_SECONDS:
            hits.popleft()
        allowed = len(hits) < limit
        if allowed:
            hits.append(now)
        reset = math.ceil(hits[0] + PERIOD_SECONDS - now) if hits else PERIOD_SECONDS
        return Decision(allowed, limit, max(limit - len(hits), 0), max(reset, 0))


def binding_key(group: str, key: str) -> str:
    """A group that borrows another group's binding counts under prefixed keys, so the two never share a count."""
    return key if BINDINGS[group] == f"RATE_LIMIT_{group.upper()}" else f"{group}:{key}"


class WorkersBindingLimiter:
    """Cloudflare's Rate Limiting binding (`limit({key})` → {success}); it reports no remaining count."""

    def __init__(self, js_env: Any, fallback: RateLimiter) -> None:
        self._js_env = js_env
        self._fallback = fallback

    async def hit(self, group: str, key: str, limit: int, now: float) -> Decision:
        binding = getattr(self._js_env, BINDINGS[group], None)
        if binding is None:
            return await self._fallback.hit(group, key, limit, now)
        outcome = await binding.limit(key=binding_key(group, key))
        success = bool(getattr(outcome, "success", outcome.get("success") if isinstance(outcome, dict) else False))
        return Decision(success, limit, limit if success else 0, PERIOD_SECONDS)


async def enforce(
    limiter: RateLimiter, env: Env, group: str, user_id: str | None, client_ip: str, now: float
) -> dict[str, str]:
    """Count this request; the headers to send, or 429 E9003 carrying them."""
    decision = await limiter.hit(group, subject(group, user_id, client_ip), limit_for(env, group), now)
    if not decision.allowed:
        raise ApiError(
            "E9003",
            details={
                "limit": decision.limit,
                "period_seconds": PERIOD_SECONDS,
                "retry_after_seconds": max(decision.reset_seconds, 1),
            },
            headers=decision.headers(),
        )
    return decision.headers()
