"""Per-isolate memory of how many calls one JSON-RPC batch request may carry, per endpoint that refused more."""

from __future__ import annotations

__all__ = ["BatchLimits"]


class BatchLimits:
    """Per endpoint key (its URL, held only in memory): the largest batch to send it, once it refused a larger one.

    An endpoint never heard refusing has no limit: its batches go out whole. A limit only goes down, and
    lives as long as the isolate, so later batches to that endpoint are split before they are sent instead
    of being refused again. Nothing here does I/O or reads a clock.
    """

    def __init__(self) -> None:
        self._limits: dict[str, int] = {}

    def limit(self, endpoint: str) -> int | None:
        """The most calls one batch to `endpoint` should carry; None when it never refused a batch."""
        return self._limits.get(endpoint)

    def lower(self, endpoint: str, size: int) -> int:
        """Remember that `endpoint` takes at most `size` calls per batch (at least 1); the limit now in force."""
        size = max(1, int(size))
        known = self._limits.get(endpoint)
        if known is None or size < known:
            self._limits[endpoint] = size
            return size
        return known
