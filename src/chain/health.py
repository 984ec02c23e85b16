"""Per-isolate RPC endpoint health: a small circuit breaker per endpoint, and the endpoints ordered by it."""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass

from chain.batchlimits import BatchLimits

__all__ = ["DEFAULT_COOLDOWN_SECONDS", "DEFAULT_FAILURE_THRESHOLD", "BreakerState", "EndpointHealth"]

# Three failures in a row (timeouts, 5xx, drops, malformed answers, lost hedges) open an endpoint's breaker.
DEFAULT_FAILURE_THRESHOLD = 3
# How long an open breaker keeps an endpoint at the back of the list, and how long one failure demotes it.
DEFAULT_COOLDOWN_SECONDS = 10.0


class BreakerState(enum.Enum):
    CLOSED = "closed"  # in use
    OPEN = "open"  # failed repeatedly: tried only when nothing else is left, until the cool-down ends
    HALF_OPEN = "half-open"  # cool-down over: the next request probes it; a success closes it, a failure re-opens


@dataclass
class _Breaker:
    failures: int = 0  # consecutive
    opened_at: float | None = None
    last_failure: float | None = None
    probing: bool = False  # a half-open probe is in flight: other requests keep away until it ends


class EndpointHealth:
    """Remembers, per endpoint key (its URL, held only in memory), how its recent requests went.

    All methods take the time (`now`, seconds) from the caller, so a test drives the breaker with its own
    clock. Nothing here does I/O or reads a clock: one instance lives as long as its isolate, and so does
    `batch_limits`, what the endpoints said about the size of the batches they take.
    """

    def __init__(
        self, *, failure_threshold: int = DEFAULT_FAILURE_THRESHOLD, cooldown: float = DEFAULT_COOLDOWN_SECONDS
    ) -> None:
        if failure_threshold < 1 or cooldown < 0:
            raise ValueError("failure_threshold must be >= 1 and cooldown >= 0")
        self._threshold = failure_threshold
        self._cooldown = float(cooldown)
        self._breakers: dict[str, _Breaker] = {}
        self.batch_limits = BatchLimits()

    def state(self, endpoint: str, now: float) -> BreakerState:
        breaker = self._breakers.get(endpoint)
        if breaker is None or breaker.opened_at is None:
            return BreakerState.CLOSED
        if now - breaker.opened_at < self._cooldown:
            return BreakerState.OPEN
        return BreakerState.HALF_OPEN

    def _rank(self, endpoint: str, now: float) -> int:
        breaker = self._breakers.get(endpoint)
        state = self.state(endpoint, now)
        if breaker is None:
            return 0
        if state is BreakerState.CLOSED:
            # A recent failure demotes an endpoint behind the ones without; it regains its place after the
            # cool-down, so a preferred provider that had one bad moment is tried first again.
            recent = breaker.last_failure is not None and now - breaker.last_failure < self._cooldown
            return 1 if recent else 0
        if state is BreakerState.HALF_OPEN and not breaker.probing:
            return 0  # the probe: one request tries it in its configured place
        return 2

    def order(self, endpoints: Sequence[str], now: float) -> list[str]:
        """The endpoints healthiest first; among equals, in configured order (a stable sort)."""
        return sorted(endpoints, key=lambda endpoint: self._rank(endpoint, now))

    def healthy(self, endpoint: str, now: float) -> bool:
        """Worth a hedge: closed, or half-open with no probe in flight (the hedge is then the probe)."""
        return self._rank(endpoint, now) < 2

    def started(self, endpoint: str, now: float) -> None:
        """An attempt begins: when the breaker is half-open, this attempt is its probe."""
        if self.state(endpoint, now) is BreakerState.HALF_OPEN:
            self._breakers.setdefault(endpoint, _Breaker()).probing = True

    def succeeded(self, endpoint: str, now: float) -> None:
        breaker = self._breakers.get(endpoint)
        if breaker is not None:
            # Its latest outcome is good: closed, and no longer demoted.
            del self._breakers[endpoint]

    def failed(self, endpoint: str, now: float) -> None:
        breaker = self._breakers.setdefault(endpoint, _Breaker())
        breaker.failures += 1
        breaker.last_failure = now
        breaker.probing = False
        if breaker.failures >= self._threshold:
            # (Re-)open: a failed half-open probe starts a new cool-down.
            breaker.opened_at = now

    def abandoned(self, endpoint: str, now: float) -> None:
        """An attempt ended without an outcome (the whole request was cancelled): a probe may run again."""
        breaker = self._breakers.get(endpoint)
        if breaker is not None:
            breaker.probing = False
