"""Tests for the real-anvil harness (tests/support) and each Solidity fixture contract."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from eth_account import Account
from eth_account.messages import defunct_hash_message, encode_defunct
from eth_utils import keccak

from tests.support.anvil import (
    REPO_ROOT,
    AnvilError,
    AnvilNode,
    RpcError,
    find_anvil_binary,
)
from tests.support.contracts import (
    ARTIFACTS_DIR,
    FIXTURE_CONTRACTS,
    TransactionFailed,
    call,
    deploy,
    load_artifact,
    resolve_function,
    transact,
)

pytestmark = pytest.mark.slow

MAGIC_VALUE = bytes.fromhex("1626ba7e")
INVALID = bytes.fromhex("ffffffff")


@pytest.fixture
def isolated(anvil: AnvilNode) -> Iterator[AnvilNode]:
    """The session node, with every state change of the test reverted afterwards."""
    snap = anvil.snapshot()
    yield anvil
    anvil.revert(snap)


def _process_gone(pid: int) -> bool:
    """True when no process (not even a zombie) has this pid."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def _live_group_members(pgid: int) -> list[int]:
    """Pids of non-zombie processes in process group ``pgid`` (read from /proc)."""
    live = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rpartition(")")[2].split()
        except OSError:
            continue
        state, pgrp = fields[0], int(fields[2])
        if pgrp == pgid and state != "Z":
            live.append(int(stat.parent.name))
    return live


# -- node ------------------------------------------------------------------------------------------


def test_node_reports_chain_id_and_dev_accounts(anvil: AnvilNode) -> None:
    assert anvil.running
    assert anvil.url.startswith("http://127.0.0.1:")
    assert int(anvil.rpc("eth_chainId"), 16) == 31337
    assert int(anvil.rpc("net_version")) == 31337
    assert len(anvil.accounts) == 10
    assert anvil.get_balance(anvil.accounts[0]) == 10_000 * 10**18


def test_set_balance_then_get_balance(isolated: AnvilNode) -> None:
    address = Account.create().address
    isolated.set_balance(address, 123_456_789 * 10**9)
    assert int(isolated.rpc("eth_getBalance", [address, "latest"]), 16) == 123_456_789 * 10**9
    isolated.set_balance(address, 0)
    assert isolated.get_balance(address) == 0


def test_mine_and_block_number(isolated: AnvilNode) -> None:
    start = isolated.block_number()
    isolated.mine()
    isolated.mine(3)
    assert isolated.block_number() == start + 4


def test_snapshot_revert_restores_state(anvil: AnvilNode) -> None:
    address = Account.create().address
    snap = anvil.snapshot()
    anvil.set_balance(address, 5)
    anvil.revert(snap)
    assert anvil.get_balance(address) == 0


def test_rpc_error_is_raised(anvil: AnvilNode) -> None:
    with pytest.raises(RpcError) as info:
        anvil.rpc("eth_noSuchMethod", [])
    assert info.value.method == "eth_noSuchMethod"
    assert info.value.code != 0


def test_custom_chain_id_and_stop_leaves_no_process() -> None:
    node = AnvilNode(chain_id=4242)
    with node:
        assert int(node.rpc("eth_chainId"), 16) == 4242
        pid = node.pid
        assert pid is not None and not _process_gone(pid)
    assert not node.running and node.pid is None
    assert _process_gone(pid)
    with pytest.raises(ProcessLookupError):  # the node led its own process group: nothing in it survives
        os.killpg(pid, 0)
    node.stop()  # idempotent
    with pytest.raises(AnvilError, match="not running"):
        node.rpc("eth_chainId")


def test_native_binary_is_preferred() -> None:
    binary = find_anvil_binary()
    assert binary.is_file()
    assert "node_modules" in binary.parts
    assert binary.name == "anvil"
    assert binary.parent != REPO_ROOT / "node_modules" / ".bin", "expected the native binary, not the Node wrapper"


def test_node_wrapper_fallback_leaves_no_live_process() -> None:
    # node_modules/.bin/anvil is a Node script that spawns the native binary and does not wait for it.
    with AnvilNode(binary=REPO_ROOT / "node_modules" / ".bin" / "anvil") as node:
        pid = node.pid
        assert pid is not None
        assert int(node.rpc("eth_chainId"), 16) == 31337
        assert len(_live_group_members(pid)) == 2  # node wrapper + native anvil
    assert _process_gone(pid)
    assert _live_group_members(pid) == []
    with pytest.raises(ProcessLookupError):  # not even an orphaned zombie of the native child
        os.killpg(pid, 0)


def test_fresh_anvil_is_a_separate_node(fresh_anvil: AnvilNode, anvil: AnvilNode) -> None:
    assert fresh_anvil.url != anvil.url
    address = Account.create().address
    fresh_anvil.set_balance(address, 7)
    assert fresh_anvil.get_balance(address) == 7
    assert anvil.get_balance(address) == 0


def test_fixed_port_in_use_is_refused(anvil: AnvilNode) -> None:
    with pytest.raises(AnvilError, match="already in use"):
        AnvilNode(port=anvil.port).start()


def test_missing_binary_gives_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(AnvilError, match="anvil not found"):
        AnvilNode(binary=tmp_path / "no-anvil").start()


def test_startup_failure_reports_anvil_output() -> None:
    with pytest.raises(AnvilError, match="exited with code") as info:
        AnvilNode(extra_args=["--no-such-flag"], startup_timeout=10).start()
    assert "no-such-flag" in str(info.value)


# -- artifacts ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", FIXTURE_CONTRACTS)
def test_artifacts_are_complete(name: str) -> None:
    artifact = load_artifact(name)
    assert artifact["contract"] == name
    assert artifact["compiler"] == "solc 0.8.26"
    assert artifact["bytecode"].startswith("0x") and len(artifact["bytecode"]) > 100
    assert any(item["type"] == "function" for item in artifact["abi"])
    assert json.loads((ARTIFACTS_DIR / f"{name}.json").read_text()) == artifact


def test_resolve_function_forms() -> None:
    assert resolve_function("balanceOf").signature == "balanceOf(address)"
    assert resolve_function("balanceOf(address)").outputs == ("uint256",)
    assert resolve_function("foo(uint256,(address,bytes)[])(bool)").inputs == ("uint256", "(address,bytes)[]")
    assert resolve_function("decimals", contract="PriceFeed").outputs == ("uint8",)
    with pytest.raises(ValueError, match="not a unique function"):
        resolve_function("nope")


# -- TestToken -------------------------------------------------------------------------------------


def test_test_token_mint_set_balance_transfer(isolated: AnvilNode) -> None:
    token = deploy(isolated, "TestToken")
    alice, bob = isolated.accounts[1], Account.create().address
    assert call(isolated, token, "name") == "Test Token"
    assert call(isolated, token, "symbol") == "TEST"
    assert call(isolated, token, "decimals", contract="TestToken") == 18

    transact(isolated, token, "mint", [alice, 5 * 10**18])
    assert call(isolated, token, "balanceOf", [alice]) == 5 * 10**18
    transact(isolated, token, "setBalance", [bob, 42])
    assert call(isolated, token, "balanceOf(address)(uint256)", [bob]) == 42
    assert call(isolated, token, "totalSupply") == 5 * 10**18 + 42

    transact(isolated, token, "setBalance", [alice, 10])
    transact(isolated, token, "transfer", [bob, 4], sender=alice)
    assert call(isolated, token, "balanceOf", [alice]) == 6
    assert call(isolated, token, "balanceOf", [bob]) == 46

    spender = isolated.accounts[2]
    transact(isolated, token, "approve", [spender, 3], sender=alice)
    assert call(isolated, token, "allowance", [alice, spender]) == 3
    transact(isolated, token, "transferFrom", [alice, bob, 3], sender=spender)
    assert call(isolated, token, "allowance", [alice, spender]) == 0
    assert call(isolated, token, "balanceOf", [bob]) == 49
    assert call(isolated, token, "totalSupply") == 52

    with pytest.raises((RpcError, TransactionFailed)):
        transact(isolated, token, "transfer", [bob, 1000], sender=alice)


# -- ContractWallet (EIP-1271) ---------------------------------------------------------------------


def test_contract_wallet_validates_owner_personal_sign(isolated: AnvilNode) -> None:
    owner, stranger = Account.create(), Account.create()
    wallet = deploy(isolated, "ContractWallet", owner.address)
    assert call(isolated, wallet, "owner").lower() == owner.address.lower()

    message = "TattleHash: I agree to the terms. nonce=42"
    signable = encode_defunct(text=message)
    digest = defunct_hash_message(text=message)
    expected = keccak(f"\x19Ethereum Signed Message:\n{len(message)}{message}".encode())
    assert digest == expected  # the personal_sign hash the contract is given

    good = Account.sign_message(signable, owner.key)
    assert good.message_hash == digest
    assert call(isolated, wallet, "isValidSignature", [digest, bytes(good.signature)]) == MAGIC_VALUE

    # v in {0, 1} is accepted too.
    compact_v = bytes(good.signature[:64]) + bytes([good.v - 27])
    assert call(isolated, wallet, "isValidSignature", [digest, compact_v]) == MAGIC_VALUE

    bad = Account.sign_message(signable, stranger.key)
    assert call(isolated, wallet, "isValidSignature", [digest, bytes(bad.signature)]) == INVALID

    other_digest = defunct_hash_message(text=message + "!")
    assert call(isolated, wallet, "isValidSignature", [other_digest, bytes(good.signature)]) == INVALID
    assert call(isolated, wallet, "isValidSignature", [digest, b"\x01" * 64]) == INVALID
    assert call(isolated, wallet, "isValidSignature", [digest, bytes(good.signature[:64]) + b"\x05"]) == INVALID


# -- PriceFeed -------------------------------------------------------------------------------------


def test_price_feed_set_answer_then_latest_round_data(isolated: AnvilNode) -> None:
    feed = deploy(isolated, "PriceFeed")
    assert call(isolated, feed, "decimals", contract="PriceFeed") == 8
    assert call(isolated, feed, "description") == "TEST / USD"
    assert call(isolated, feed, "latestRoundData") == (0, 0, 0, 0, 0)

    transact(isolated, feed, "setAnswer", [3_150_12345678, 1_700_000_000])
    assert call(isolated, feed, "latestRoundData") == (1, 3_150_12345678, 1_700_000_000, 1_700_000_000, 1)

    transact(isolated, feed, "setAnswer", [-5, 1_700_000_600])
    round_id, answer, started_at, updated_at, answered_in_round = call(isolated, feed, "latestRoundData")
    assert (round_id, answer, updated_at, answered_in_round) == (2, -5, 1_700_000_600, 2)
    assert started_at == 1_700_000_600
