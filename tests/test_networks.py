"""Tests for the network registry: table, endpoint resolution from env, lookups, host redaction."""

from __future__ import annotations

import pytest

from chain.networks import (
    NETWORKS,
    Network,
    UnsupportedNetwork,
    endpoint_host,
    network_by_caip2,
    network_by_name,
    rpc_endpoints,
    usable_networks,
)

EXPECTED = {
    "eth-mainnet": 1,
    "base-mainnet": 8453,
    "polygon-mainnet": 137,
    "arbitrum-one": 42161,
    "optimism-mainnet": 10,
    "bsc-mainnet": 56,
    "eth-sepolia": 11155111,
    "base-sepolia": 84532,
    "local": 31337,
}


def net(name: str) -> Network:
    return next(n for n in NETWORKS if n.name == name)


def test_table_has_the_contract_networks_with_unique_names_and_ids() -> None:
    assert {n.name: n.chain_id for n in NETWORKS} == EXPECTED
    assert len({n.chain_id for n in NETWORKS}) == len(NETWORKS)
    assert net("eth-mainnet").caip2 == "eip155:1"
    assert net("eth-sepolia").caip2 == "eip155:11155111"
    assert net("eth-sepolia").is_testnet and not net("base-mainnet").is_testnet
    assert net("bsc-mainnet").native_symbol == "BNB"
    assert net("arbitrum-one").env_var == "RPC_URL_ARBITRUM_ONE"


def test_network_is_frozen() -> None:
    with pytest.raises(AttributeError):
        net("eth-mainnet").chain_id = 2  # type: ignore[misc]


def test_public_fallbacks_without_env() -> None:
    assert rpc_endpoints(net("eth-mainnet"), {}) == ["https://ethereum-rpc.publicnode.com"]
    assert rpc_endpoints(net("base-mainnet"), {})[0] == "https://mainnet.base.org"
    assert rpc_endpoints(net("polygon-mainnet"), {})[0] == "https://polygon-rpc.com"
    assert rpc_endpoints(net("arbitrum-one"), {})[0] == "https://arb1.arbitrum.io/rpc"
    assert rpc_endpoints(net("optimism-mainnet"), {})[0] == "https://mainnet.optimism.io"
    assert rpc_endpoints(net("bsc-mainnet"), {})[0] == "https://bsc-dataseed.binance.org"
    assert rpc_endpoints(net("eth-sepolia"), {})[0] == "https://ethereum-sepolia-rpc.publicnode.com"
    assert rpc_endpoints(net("base-sepolia"), {})[0] == "https://sepolia.base.org"
    assert rpc_endpoints(net("local"), {}) == []
    for network in NETWORKS:
        assert all(url.startswith("https://") for url in rpc_endpoints(network, {}))


def test_env_override_comes_first_then_legacy_then_fallback() -> None:
    env = {
        "RPC_URL_ETH_MAINNET": "https://a.example/k1, https://b.example/k2",
        "RPC_ETH_MAIN": "https://legacy.example/k3",
    }
    assert rpc_endpoints(net("eth-mainnet"), env) == [
        "https://a.example/k1",
        "https://b.example/k2",
        "https://legacy.example/k3",
        "https://ethereum-rpc.publicnode.com",
    ]


@pytest.mark.parametrize(
    ("name", "legacy"),
    [
        ("eth-mainnet", "RPC_ETH_MAIN"),
        ("base-mainnet", "RPC_BASE_MAIN"),
        ("polygon-mainnet", "WEB3_RPC_URL_POLYGON"),
    ],
)
def test_legacy_names(name: str, legacy: str) -> None:
    endpoints = rpc_endpoints(net(name), {legacy: "https://legacy.example/key"})
    assert endpoints[0] == "https://legacy.example/key"
    assert len(endpoints) > 1  # public fallbacks still follow


def test_legacy_names_apply_only_to_their_network() -> None:
    env = {"RPC_ETH_MAIN": "https://legacy.example/key"}
    assert "https://legacy.example/key" not in rpc_endpoints(net("eth-sepolia"), env)
    assert "https://legacy.example/key" not in rpc_endpoints(net("base-mainnet"), env)


def test_comma_list_spaces_blanks_duplicates_and_non_http_entries() -> None:
    env = {
        "RPC_URL_BASE_MAINNET": " , https://one.example/x ,,  https://two.example ,"
        " wss://ws.example , https://one.example/x, https://mainnet.base.org ",
    }
    assert rpc_endpoints(net("base-mainnet"), env) == [
        "https://one.example/x",
        "https://two.example",
        "https://mainnet.base.org",  # configured explicitly: keeps its configured position once
        "https://base-rpc.publicnode.com",
    ]


def test_blank_env_value_falls_back_to_public() -> None:
    env = {"RPC_URL_ETH_MAINNET": "  ,  ", "RPC_ETH_MAIN": ""}
    assert rpc_endpoints(net("eth-mainnet"), env) == ["https://ethereum-rpc.publicnode.com"]


def test_public_fallbacks_can_be_disabled() -> None:
    env = {"RPC_PUBLIC_FALLBACKS": " Off ", "RPC_URL_ETH_MAINNET": "https://mine.example/key"}
    assert rpc_endpoints(net("eth-mainnet"), env) == ["https://mine.example/key"]
    assert rpc_endpoints(net("base-mainnet"), env) == []
    assert [n.name for n in usable_networks(env)] == ["eth-mainnet"]
    with pytest.raises(UnsupportedNetwork):
        network_by_name("base-mainnet", env)
    # Any other value leaves them on.
    assert rpc_endpoints(net("base-mainnet"), {"RPC_PUBLIC_FALLBACKS": "1"})


def test_local_only_when_rpc_url_local_is_set() -> None:
    assert "local" not in [n.name for n in usable_networks({})]
    assert "local" not in [n.name for n in usable_networks({"RPC_URL_LOCAL": "  "})]
    with pytest.raises(UnsupportedNetwork):
        network_by_name("local", {})
    with pytest.raises(UnsupportedNetwork):
        network_by_caip2("eip155:31337", {})

    env = {"RPC_URL_LOCAL": "http://127.0.0.1:8545"}
    assert [n.name for n in usable_networks(env)][-1] == "local"
    assert rpc_endpoints(net("local"), env) == ["http://127.0.0.1:8545"]
    assert network_by_name("local", env).chain_id == 31337
    assert network_by_caip2("eip155:31337", env).name == "local"


def test_usable_networks_without_env_are_all_public_ones_in_table_order() -> None:
    assert [n.name for n in usable_networks({})] == [n.name for n in NETWORKS if n.name != "local"]


def test_network_by_name() -> None:
    assert network_by_name("polygon-mainnet", {}).chain_id == 137
    for bad in ["", "ETH-MAINNET", "eth-mainnet ", "ethereum", "solana-mainnet"]:
        with pytest.raises(UnsupportedNetwork):
            network_by_name(bad, {})
    with pytest.raises(UnsupportedNetwork):
        network_by_name(None, {})  # type: ignore[arg-type]


def test_unsupported_network_is_a_value_error() -> None:
    assert issubclass(UnsupportedNetwork, ValueError)


@pytest.mark.parametrize(
    ("caip2", "name"),
    [
        ("eip155:1", "eth-mainnet"),
        ("eip155:8453", "base-mainnet"),
        ("eip155:137", "polygon-mainnet"),
        ("eip155:42161", "arbitrum-one"),
        ("eip155:10", "optimism-mainnet"),
        ("eip155:56", "bsc-mainnet"),
        ("eip155:11155111", "eth-sepolia"),
        ("eip155:84532", "base-sepolia"),
    ],
)
def test_network_by_caip2(caip2: str, name: str) -> None:
    assert network_by_caip2(caip2, {}).name == name


@pytest.mark.parametrize(
    "caip2",
    [
        "cosmos:x",
        "cosmos:1",
        "eip155:999999",
        "eip155:01",
        "eip155:0",
        "eip155:",
        "eip155:-1",
        "eip155:+1",
        "eip155:1.0",
        "eip155:0x1",
        "eip155: 1",
        "eip155:1 ",
        " eip155:1",
        "eip155:1\n",
        "EIP155:1",
        "eip155:1:2",
        "eip155:\u0661",  # Arabic-Indic digit one: int() would accept it
        "eip155:" + "9" * 5000,
        "1",
        "",
    ],
)
def test_network_by_caip2_rejects(caip2: str) -> None:
    with pytest.raises(UnsupportedNetwork):
        network_by_caip2(caip2, {})


def test_network_by_caip2_rejects_non_strings() -> None:
    for bad in [1, None, b"eip155:1"]:
        with pytest.raises(UnsupportedNetwork):
            network_by_caip2(bad, {})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("url", "host"),
    [
        ("https://eth-mainnet.g.alchemy.com/v2/SECRETKEY123", "eth-mainnet.g.alchemy.com"),
        ("https://mainnet.infura.io/v3/SECRET?apikey=SECRET#frag", "mainnet.infura.io"),
        ("https://user:SECRET@rpc.example.com/path", "rpc.example.com"),
        ("https://SECRET@rpc.example.com", "rpc.example.com"),
        ("https://RPC.Example.COM/", "rpc.example.com"),
        ("https://rpc.example.com:443/SECRET", "rpc.example.com"),
        ("http://rpc.example.com:80/SECRET", "rpc.example.com"),
        ("https://rpc.example.com:8443/SECRET", "rpc.example.com:8443"),
        ("http://127.0.0.1:8545", "127.0.0.1:8545"),
        ("http://[::1]:8545/SECRET", "[::1]:8545"),
        ("https://[2001:db8::1]/SECRET", "[2001:db8::1]"),
    ],
)
def test_endpoint_host_keeps_only_host_and_non_default_port(url: str, host: str) -> None:
    assert endpoint_host(url) == host


@pytest.mark.parametrize("url", ["", "not a url", "https://", "https://host:notaport/SECRET", "/SECRET"])
def test_endpoint_host_invalid_never_echoes_input(url: str) -> None:
    result = endpoint_host(url)
    assert "SECRET" not in result
    if url in ("", "not a url", "https://", "/SECRET"):
        assert result == "invalid-endpoint"
