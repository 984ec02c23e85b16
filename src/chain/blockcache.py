"""What one isolate learned from each RPC endpoint between requests: its chain id, its newest head, its health."""

from __future__ import annotations

from chain.health import EndpointHealth

__all__ = ["CHAIN_ID_RECHECK_SECONDS", "BlockCache"]

# An endpoint found on another chain is left out for this long, then asked again (a fixed misconfiguration,
# a dev chain restarted with the right id). An endpoint found on the right chain is trusted for the isolate's life.
CHAIN_ID_RECHECK_SECONDS = 300.0


class BlockCache:
    """Per endpoint (keyed by its URL, which never leaves memory): chain id, (newest block, when seen), health.

    Keyed by the endpoint rather than the network: one provider's head must never pin another provider's
    read (another chain, another fork, a lagging backend), so every head belongs to the endpoint that said it.
    """

    def __init__(self, health: EndpointHealth | None = None) -> None:
        self._heads: dict[str, tuple[int, float]] = {}
        self._chain_ids: dict[str, tuple[int, float]] = {}
        self.health = health if health is not None else EndpointHealth()

    def recent(self, endpoint: str, now: float, max_age: float) -> int | None:
        """The endpoint's head seen within `max_age` seconds, if any."""
        seen = self._heads.get(endpoint)
        if seen is None or max_age <= 0 or now - seen[1] > max_age:
            return None
        return seen[0]

    def remember(self, endpoint: str, block: int, now: float) -> None:
        previous = self._heads.get(endpoint)
        if previous is None or block >= previous[0] or now - previous[1] > 0:
            self._heads[endpoint] = (block, now)

    def forget(self, endpoint: str) -> None:
        self._heads.pop(endpoint, None)

    def chain_id(self, endpoint: str, expected: int, now: float) -> int | None:
        """The chain id the endpoint reported; None when never asked, or when a mismatch is due a re-check."""
        seen = self._chain_ids.get(endpoint)
        if seen is None:
            return None
        chain_id, when = seen
        if chain_id != expected and now - when > CHAIN_ID_RECHECK_SECONDS:
            return None
        return chain_id

    def remember_chain_id(self, endpoint: str, chain_id: int, now: float) -> None:
        previous = self._chain_ids.get(endpoint)
        if previous is not None and previous[0] != chain_id:
            # Another chain behind the same URL: its old head says nothing about this one.
            self.forget(endpoint)
        self._chain_ids[endpoint] = (chain_id, now)
