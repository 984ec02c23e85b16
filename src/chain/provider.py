"""Builds the JSON-RPC client for a network from the deployment's configuration (endpoints, timeout)."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from chain.health import EndpointHealth
from chain.networks import Network, UnsupportedNetwork, rpc_endpoints
from chain.rpc import JsonRpcClient

if TYPE_CHECKING:
    import httpx

    from core.config import Env

__all__ = [
    "DEFAULT_RPC_TIMEOUT_SECONDS",
    "HEDGE_DELAY_SECONDS",
    "RPC_TIMEOUT_ENV",
    "build_rpc_client",
    "rpc_timeout",
]

RPC_TIMEOUT_ENV = "RPC_TIMEOUT_SECONDS"
DEFAULT_RPC_TIMEOUT_SECONDS = 10.0
# A misconfigured huge timeout would let one slow provider hold a request (and a Worker) for minutes.
_MAX_RPC_TIMEOUT_SECONDS = 60.0
# An attempt that has not answered after this long gets the same request sent to the next healthy endpoint.
# A constant: above a healthy provider's usual answer time, far below a user's patience.
HEDGE_DELAY_SECONDS = 0.075


def rpc_timeout(env: Env) -> float:
    """Per-attempt timeout in seconds from RPC_TIMEOUT_SECONDS; the default when unset or unusable."""
    raw = env.get(RPC_TIMEOUT_ENV).strip()
    try:
        value = float(raw) if raw else DEFAULT_RPC_TIMEOUT_SECONDS
    except ValueError:
        return DEFAULT_RPC_TIMEOUT_SECONDS
    if not math.isfinite(value) or value <= 0:
        return DEFAULT_RPC_TIMEOUT_SECONDS
    return min(value, _MAX_RPC_TIMEOUT_SECONDS)


def build_rpc_client(
    network: Network,
    env: Env,
    http: httpx.AsyncClient,
    *,
    retries: int = 2,
    backoff_base: float = 0.2,
    backoff_max: float = 2.0,
    health: EndpointHealth | None = None,
    hedge_delay: float | None = HEDGE_DELAY_SECONDS,
    clock: Callable[[], float] = time.monotonic,
) -> JsonRpcClient:
    """A client over the network's endpoints (configured order, reordered by `health`); UnsupportedNetwork when none.

    The timeout always comes from the configuration; retries and backoff are the caller's latency choice.
    `health` is the isolate's memory of the endpoints (None: every request starts at the first one).
    """
    endpoints = rpc_endpoints(network, env)
    if not endpoints:
        raise UnsupportedNetwork(f"no RPC endpoint configured for {network.name}")
    return JsonRpcClient(
        endpoints,
        http=http,
        timeout=rpc_timeout(env),
        retries=retries,
        backoff_base=backoff_base,
        backoff_max=backoff_max,
        health=health,
        hedge_delay=hedge_delay,
        clock=clock,
    )
