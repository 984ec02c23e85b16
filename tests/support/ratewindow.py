"""Fixed rate-limit windows: wait for a window with time enough left, so a counted run does not straddle two."""

from __future__ import annotations

import time

# Cloudflare's Rate Limiting binding takes a period of 10 or 60 s; wrangler.toml uses 60.
RATE_WINDOW_SECONDS = 60


def current_window(period: int) -> int:
    """The window miniflare's ratelimit worker counts in now: floor(epoch seconds / period)."""
    return int(time.time() // period)


def start_in_fresh_window(period: int, *, needed: float) -> int:
    """Sleep into the next window when fewer than `needed` seconds are left in this one; return the window."""
    left = period - time.time() % period
    if left < needed:
        time.sleep(left + 0.05)
    return current_window(period)
