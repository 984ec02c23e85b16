"""The supported EVM networks and the JSON-RPC endpoints configured for each of them."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import urlsplit


@dataclass(frozen=True)
class Network:
    """One EVM network the gatekeeper can read from."""

    name: str
    chain_id: int
    native_symbol: str
    is_testnet: bool

    @property
    def caip2(self) -> str:
        """The CAIP-2 chain id, e.g. "eip155:1"."""
        return f"eip155:{self.chain_id}"

    @property
    def env_var(self) -> str:
        """The environment variable holding this network's endpoints, e.g. RPC_URL_ETH_MAINNET."""
        return "RPC_URL_" + self.name.upper().replace("-", "_")


LOCAL = "local"

NETWORKS: tuple[Network, ...] = (
    Network("eth-mainnet", 1, "ETH", False),
    Network("base-mainnet", 8453, "ETH", False),
    # Polygon PoS renamed its gas token from MATIC to POL in September 2024.
    Network("polygon-mainnet", 137, "POL", False),
    Network("arbitrum-one", 42161, "ETH", False),
    Network("optimism-mainnet", 10, "ETH", False),
    Network("bsc-mainnet", 56, "BNB", False),
    Network("eth-sepolia", 11155111, "ETH", True),
    Network("base-sepolia", 84532, "ETH", True),
    # A developer's own node (anvil/hardhat); exists only when RPC_URL_LOCAL points at it.
    Network(LOCAL, 31337, "ETH", True),
)

# Names deployments used before v2; still honoured so an upgrade needs no config change.
_LEGACY_ENV_VARS: dict[str, tuple[str, ...]] = {
    "eth-mainnet": ("RPC_ETH_MAIN",),
    "base-mainnet": ("RPC_BASE_MAIN",),
    "polygon-mainnet": ("WEB3_RPC_URL_POLYGON",),
}

# Keyless public endpoints, tried after any configured ones: slow and rate-limited, but they keep
# a deployment without provider keys working.
_PUBLIC_FALLBACKS: dict[str, tuple[str, ...]] = {
    "eth-mainnet": ("https://ethereum-rpc.publicnode.com",),
    "base-mainnet": ("https://mainnet.base.org", "https://base-rpc.publicnode.com"),
    "polygon-mainnet": ("https://polygon-rpc.com", "https://polygon-bor-rpc.publicnode.com"),
    "arbitrum-one": ("https://arb1.arbitrum.io/rpc", "https://arbitrum-one-rpc.publicnode.com"),
    "optimism-mainnet": ("https://mainnet.optimism.io", "https://optimism-rpc.publicnode.com"),
    "bsc-mainnet": ("https://bsc-dataseed.binance.org", "https://bsc-rpc.publicnode.com"),
    "eth-sepolia": ("https://ethereum-sepolia-rpc.publicnode.com",),
    "base-sepolia": ("https://sepolia.base.org", "https://base-sepolia-rpc.publicnode.com"),
}

# Set to 0/false/no/off to never use the public endpoints (offline CI, or a deployment that must
# not leak which addresses it checks to third parties).
PUBLIC_FALLBACKS_ENV = "RPC_PUBLIC_FALLBACKS"
_FALSY = frozenset({"0", "false", "no", "off"})

_BY_NAME: dict[str, Network] = {network.name: network for network in NETWORKS}
_BY_CHAIN_ID: dict[int, Network] = {network.chain_id: network for network in NETWORKS}

# Decimal without leading zeros; the length cap keeps int() cheap on hostile input.
_CAIP2_RE = re.compile(r"eip155:(0|[1-9][0-9]{0,19})")
_DEFAULT_PORTS = {"http": 80, "https": 443}


class VarLookup(Protocol):
    """Configuration read by name (the app's Env, or a plain dict in tests)."""

    def get(self, name: str, /) -> str | None: ...


class UnsupportedNetwork(ValueError):
    """The network is unknown, or known but has no RPC endpoint in this deployment."""


def _split_urls(value: object) -> list[str]:
    if not isinstance(value, str):
        return []
    urls = []
    for entry in value.split(","):
        url = entry.strip()
        # Only http(s) is usable by the client; a stray ws:// URL must not become a dead endpoint.
        if url.lower().startswith(("https://", "http://")):
            urls.append(url)
    return urls


def rpc_endpoints(network: Network, env: VarLookup) -> list[str]:
    """Endpoints in failover order: RPC_URL_<NAME>, then legacy variables, then public fallbacks."""
    candidates = _split_urls(env.get(network.env_var))
    for legacy in _LEGACY_ENV_VARS.get(network.name, ()):
        candidates += _split_urls(env.get(legacy))
    fallbacks_setting = env.get(PUBLIC_FALLBACKS_ENV)
    use_fallbacks = not (isinstance(fallbacks_setting, str) and fallbacks_setting.strip().lower() in _FALSY)
    if use_fallbacks:
        candidates += _PUBLIC_FALLBACKS.get(network.name, ())
    # dict keeps first-seen order, so a URL listed twice keeps its earliest position.
    return list(dict.fromkeys(candidates))


def usable_networks(env: VarLookup) -> list[Network]:
    """The networks with at least one endpoint in this deployment, in table order."""
    return [network for network in NETWORKS if rpc_endpoints(network, env)]


def _usable(network: Network | None, env: VarLookup, label: str) -> Network:
    if network is None or not rpc_endpoints(network, env):
        raise UnsupportedNetwork(f"unsupported network: {label}")
    return network


def network_by_name(name: str, env: VarLookup) -> Network:
    """The usable network called `name` (e.g. "eth-mainnet"); raises UnsupportedNetwork otherwise."""
    network = _BY_NAME.get(name) if isinstance(name, str) else None
    return _usable(network, env, repr(name)[:80])


def network_by_caip2(chain_id: str, env: VarLookup) -> Network:
    """The usable network for a CAIP-2 id "eip155:<decimal>"; raises UnsupportedNetwork otherwise."""
    match = _CAIP2_RE.fullmatch(chain_id) if isinstance(chain_id, str) else None
    network = _BY_CHAIN_ID.get(int(match.group(1))) if match else None
    return _usable(network, env, repr(chain_id)[:80])


def endpoint_host(url: str) -> str:
    """The host (plus port when not the scheme's default) of an endpoint: safe to log or return."""
    # Path, query and userinfo often carry API keys, so only the host ever leaves this function.
    try:
        parts = urlsplit(url)
        host = parts.hostname
        port = parts.port
    except (ValueError, TypeError, AttributeError):
        return "invalid-endpoint"
    if not host:
        return "invalid-endpoint"
    if ":" in host:
        host = f"[{host}]"
    if port is not None and port != _DEFAULT_PORTS.get(parts.scheme.lower()):
        return f"{host}:{port}"
    return host
