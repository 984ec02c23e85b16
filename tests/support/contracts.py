"""Deploy and call the compiled Solidity test fixtures (tests/fixtures/contracts/build/*.json) on anvil.

Functions are named either by bare name (``"balanceOf"``), looked up in the fixture ABIs (pass
``contract=`` to pick one when names clash), or by a signature with optional output types in a second
pair of parentheses, cast-style: ``"balanceOf(address)(uint256)"``. Arguments use eth_abi's Python
types (hex-string or bytes addresses, ints, bytes). ``call`` returns the single decoded value, a tuple
for several outputs, or None for none.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from eth_abi import decode, encode
from eth_utils import function_signature_to_4byte_selector, to_checksum_address

from tests.support.anvil import AnvilError, AnvilNode

__all__ = [
    "ARTIFACTS_DIR",
    "FIXTURE_CONTRACTS",
    "Function",
    "TransactionFailed",
    "call",
    "deploy",
    "encode_call",
    "load_artifact",
    "resolve_function",
    "transact",
]

ARTIFACTS_DIR = Path(__file__).resolve().parents[1] / "fixtures" / "contracts" / "build"
FIXTURE_CONTRACTS = ("ContractWallet", "PriceFeed", "TestToken")


class TransactionFailed(AnvilError):
    """A transaction was mined with status 0 (or a deployment created no contract)."""

    def __init__(self, message: str, receipt: dict[str, Any]) -> None:
        super().__init__(message)
        self.receipt = receipt


@dataclass(frozen=True)
class Function:
    """A resolved contract function: name, ABI input types and ABI output types."""

    name: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]

    @property
    def signature(self) -> str:
        """Canonical signature, e.g. ``transfer(address,uint256)``."""
        return f"{self.name}({','.join(self.inputs)})"

    @property
    def selector(self) -> bytes:
        """The 4-byte function selector."""
        return function_signature_to_4byte_selector(self.signature)


@cache
def _read_artifact(name: str) -> str:
    """Raw JSON text of one artifact (cached; callers parse a fresh copy)."""
    path = ARTIFACTS_DIR / f"{name}.json"
    if not path.is_file():
        raise FileNotFoundError(f"no compiled artifact {path}; run scripts/compile_contracts.py")
    return path.read_text()


def load_artifact(name: str) -> dict[str, Any]:
    """Return ``{"contract", "compiler", "abi", "bytecode"}`` for fixture contract ``name`` (a fresh copy)."""
    artifact: dict[str, Any] = json.loads(_read_artifact(name))
    return artifact


def _abi_type(param: dict[str, Any]) -> str:
    """Canonical ABI type of one ABI-JSON parameter (tuples expanded to ``(t1,t2)``)."""
    typ = str(param["type"])
    if typ.startswith("tuple"):
        inner = ",".join(_abi_type(c) for c in param["components"])
        return f"({inner}){typ[len('tuple') :]}"
    return typ


def _split_types(text: str) -> tuple[str, ...]:
    """Split ``"uint256,(address,bytes)[]"`` at top-level commas."""
    parts: list[str] = []
    depth, start = 0, 0
    for i, ch in enumerate(text):
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append(text[start:i].strip())
            start = i + 1
    tail = text[start:].strip()
    if tail or parts:
        parts.append(tail)
    return tuple(parts)


def _parse_signature(fn: str) -> Function:
    """Parse ``name(in,...)`` or ``name(in,...)(out,...)`` into a Function."""
    name, _, rest = fn.partition("(")
    depth = 1
    for i, ch in enumerate(rest):
        depth += {"(": 1, ")": -1}.get(ch, 0)
        if depth == 0:
            inputs, tail = rest[:i], rest[i + 1 :].strip()
            break
    else:
        raise ValueError(f"unbalanced parentheses in {fn!r}")
    if tail and not (tail.startswith("(") and tail.endswith(")")):
        raise ValueError(f"bad output types in {fn!r}; expected e.g. 'balanceOf(address)(uint256)'")
    return Function(name.strip(), _split_types(inputs), _split_types(tail[1:-1]) if tail else ())


def _abi_functions(contract: str) -> list[Function]:
    """All functions declared in one fixture ABI."""
    return [
        Function(
            str(item["name"]),
            tuple(_abi_type(p) for p in item.get("inputs", [])),
            tuple(_abi_type(p) for p in item.get("outputs", [])),
        )
        for item in load_artifact(contract)["abi"]
        if item.get("type") == "function"
    ]


def resolve_function(fn: str, *, contract: str | None = None, nargs: int | None = None) -> Function:
    """Resolve a bare name (via the fixture ABIs) or a signature string to a Function."""
    contracts = (contract,) if contract else FIXTURE_CONTRACTS
    if "(" in fn:
        parsed = _parse_signature(fn)
        if parsed.outputs:
            return parsed
        # Signature without outputs: borrow the output types from a fixture ABI when one has it.
        known = {f for c in contracts for f in _abi_functions(c) if f.signature == parsed.signature}
        if len(known) == 1:
            return known.pop()
        if contract is not None and not known:
            raise ValueError(f"{contract} has no function {parsed.signature}")
        return parsed
    matches = {
        f for c in contracts for f in _abi_functions(c) if f.name == fn and (nargs is None or len(f.inputs) == nargs)
    }
    if len(matches) != 1:
        where = contract or "the fixture contracts"
        found = ", ".join(sorted(f.signature for f in matches)) or "none"
        raise ValueError(f"{fn!r} is not a unique function in {where} (found: {found}); pass a signature")
    return matches.pop()


def encode_call(fn: str | Function, args: Sequence[Any] = (), *, contract: str | None = None) -> str:
    """Calldata (0x-hex) for calling ``fn`` with ``args``."""
    func = fn if isinstance(fn, Function) else resolve_function(fn, contract=contract, nargs=len(args))
    if len(args) != len(func.inputs):
        raise ValueError(f"{func.signature} takes {len(func.inputs)} arguments, got {len(args)}")
    return "0x" + (func.selector + encode(list(func.inputs), list(args))).hex()


def _send(node: AnvilNode, tx: dict[str, Any]) -> dict[str, Any]:
    """eth_sendTransaction from an unlocked dev account, wait for the receipt, require status 1."""
    tx_hash = node.rpc("eth_sendTransaction", [tx])
    receipt = node.wait_for_receipt(tx_hash)
    if int(receipt["status"], 16) != 1:
        raise TransactionFailed(f"transaction {tx_hash} failed (status {receipt['status']})", receipt)
    return receipt


def deploy(node: AnvilNode, name: str, *constructor_args: Any, sender: str | None = None) -> str:
    """Deploy fixture contract ``name`` from ``sender`` (default: first dev account); return its address."""
    artifact = load_artifact(name)
    ctor = next((item for item in artifact["abi"] if item.get("type") == "constructor"), None)
    types = [_abi_type(p) for p in ctor["inputs"]] if ctor else []
    if len(constructor_args) != len(types):
        raise ValueError(f"{name} constructor takes {len(types)} arguments, got {len(constructor_args)}")
    data = artifact["bytecode"] + encode(types, list(constructor_args)).hex()
    receipt = _send(node, {"from": sender or node.accounts[0], "data": data})
    address = receipt.get("contractAddress")
    if not address:
        raise TransactionFailed(f"deploying {name} created no contract", receipt)
    return to_checksum_address(address)


def call(
    node: AnvilNode,
    address: str,
    fn: str,
    args: Sequence[Any] = (),
    *,
    contract: str | None = None,
    block: str = "latest",
) -> Any:
    """``eth_call`` ``fn(*args)`` on ``address``; return the decoded result (value, tuple, or None)."""
    func = resolve_function(fn, contract=contract, nargs=len(args))
    raw = node.rpc("eth_call", [{"to": address, "data": encode_call(func, args)}, block])
    values = decode(list(func.outputs), bytes.fromhex(raw.removeprefix("0x")))
    if not func.outputs:
        return None
    return values[0] if len(values) == 1 else tuple(values)


def transact(
    node: AnvilNode,
    address: str,
    fn: str,
    args: Sequence[Any] = (),
    *,
    contract: str | None = None,
    sender: str | None = None,
    value: int = 0,
) -> dict[str, Any]:
    """Send ``fn(*args)`` to ``address`` from ``sender`` (default: first dev account); return the receipt."""
    func = resolve_function(fn, contract=contract, nargs=len(args))
    tx: dict[str, Any] = {"from": sender or node.accounts[0], "to": address, "data": encode_call(func, args)}
    if value:
        tx["value"] = hex(value)
    return _send(node, tx)
