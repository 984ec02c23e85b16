"""Feature flags from Worker env vars: off by default, on for true/1/yes, or for a stable N % of callers."""

from __future__ import annotations

import hashlib
import re

_ON = {"true", "1", "yes", "on"}
_PERCENT = re.compile(r"^\s*(\d{1,3}(?:\.\d+)?)\s*%\s*$")

GATEKEEPER_V2 = "FF_GATEKEEPER_V2"
CHALLENGES = "FF_CHALLENGES"
FIRE_MODE = "FF_FIRE_MODE"
ENFORCED_MODE = "FF_ENFORCED_MODE"
WEBHOOKS = "FF_WEBHOOKS"
NOTIFICATIONS = "FF_NOTIFICATIONS"
ALL_FLAGS = (GATEKEEPER_V2, CHALLENGES, FIRE_MODE, ENFORCED_MODE, WEBHOOKS, NOTIFICATIONS)


def rollout_percent(raw: str | None) -> float:
    """How much of the traffic a flag value turns on, 0 to 100; anything unrecognised is off."""
    if raw is None:
        return 0.0
    value = raw.strip().lower()
    if value in _ON:
        return 100.0
    match = _PERCENT.match(value)
    if match:
        return min(float(match.group(1)), 100.0)
    return 0.0


def bucket(flag: str, subject: str) -> float:
    """A stable position in [0, 100) for this caller and flag, so a rollout doesn't flap per request."""
    digest = hashlib.sha256(f"{flag}:{subject}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % 10_000 / 100


def is_enabled(flag: str, raw: str | None, subject: str = "") -> bool:
    percent = rollout_percent(raw)
    if percent >= 100:
        return True
    if percent <= 0:
        return False
    return bucket(flag, subject) < percent
