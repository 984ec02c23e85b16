"""Time: an injectable clock (tests move time, never sleep) and the RFC 3339 format the API uses."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    """Anything that can tell the current UTC time."""

    def now(self) -> datetime: ...


class SystemClock:
    """The real wall clock."""

    def now(self) -> datetime:
        return datetime.now(UTC)


class ManualClock:
    """A clock that only moves when told to; for tests and simulations."""

    def __init__(self, start: datetime | None = None) -> None:
        self._now = start or datetime(2026, 1, 1, tzinfo=UTC)

    def now(self) -> datetime:
        return self._now

    def advance(self, seconds: float = 0, **delta: float) -> datetime:
        self._now += timedelta(seconds=seconds, **delta)
        return self._now

    def set(self, moment: datetime) -> None:
        self._now = moment


class OffsetClock:
    """Another clock plus an offset that only grows: the local dev server's fast-forward (never the Worker's)."""

    def __init__(self, base: Clock, offset_seconds: float = 0.0) -> None:
        if not offset_seconds >= 0:
            raise ValueError("the offset must be a number of seconds >= 0")
        self._base = base
        self._offset = float(offset_seconds)

    @property
    def offset_seconds(self) -> float:
        return self._offset

    def now(self) -> datetime:
        return self._base.now() + timedelta(seconds=self._offset)

    def advance(self, seconds: float) -> datetime:
        """Move forward (never back: leases, deadlines and schedules assume time does not reverse)."""
        if not seconds >= 0:
            raise ValueError("a clock only moves forward")
        self._offset += seconds
        return self.now()


def format_time(moment: datetime) -> str:
    """RFC 3339 UTC with millisecond precision and a `Z`; fixed width, so text order is time order."""
    moment = moment.astimezone(UTC)
    if moment.year < 1000:
        # strftime's %Y does not pad years before 1000 (glibc): kept as it was, to the byte.
        return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
    # The same text without strftime, which costs ~0.15 ms a call in Pyodide (isoformat truncates to ms too).
    return moment.isoformat(timespec="milliseconds")[:-6] + "Z"


def parse_time(text: str) -> datetime:
    """Parse an RFC 3339 timestamp with an explicit offset; naive timestamps are refused."""
    value = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    if value.tzinfo is None:
        raise ValueError("timestamp needs a timezone offset or Z")
    return value.astimezone(UTC)


def unix_seconds(moment: datetime) -> int:
    return int(moment.timestamp())
