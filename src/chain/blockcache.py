"""The newest block number seen per network and endpoint set: lets one batch pin its reads without asking first."""

from __future__ import annotations

from collections.abc import Sequence


class BlockCache:
    """Remembers (block number, when seen); a value older than the caller's max age is not offered."""

    def __init__(self) -> None:
        self._seen: dict[tuple[str, tuple[str, ...]], tuple[int, float]] = {}

    @staticmethod
    def _key(network: str, hosts: Sequence[str]) -> tuple[str, tuple[str, ...]]:
        # Keyed by the endpoints too: another endpoint list may be another chain (or another fork).
        return network, tuple(hosts)

    def recent(self, network: str, hosts: Sequence[str], now: float, max_age: float) -> int | None:
        seen = self._seen.get(self._key(network, hosts))
        if seen is None or max_age <= 0 or now - seen[1] > max_age:
            return None
        return seen[0]

    def remember(self, network: str, hosts: Sequence[str], block: int, now: float) -> None:
        key = self._key(network, hosts)
        previous = self._seen.get(key)
        if previous is None or block >= previous[0] or now - previous[1] > 0:
            self._seen[key] = (block, now)

    def forget(self, network: str, hosts: Sequence[str]) -> None:
        self._seen.pop(self._key(network, hosts), None)
