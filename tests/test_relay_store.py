"""The relay store (issue 13): every SQL statement of the relay side lives in relay/store.py, records are typed."""

from __future__ import annotations

import ast
import dataclasses
from pathlib import Path

from local.config import PROJECT_ROOT
from relay import store

RELAY = PROJECT_ROOT / "src" / "relay"


def _prepare_calls(path: Path) -> list[int]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return [
        node.lineno
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "prepare"
    ]


def test_no_relay_module_but_the_store_prepares_sql() -> None:
    found = {path.name: _prepare_calls(path) for path in sorted(RELAY.glob("*.py")) if path.name != "store.py"}
    assert {name: lines for name, lines in found.items() if lines} == {}
    assert _prepare_calls(RELAY / "store.py")  # and the store does


def test_store_records_are_frozen_dataclasses() -> None:
    records = [
        value
        for value in vars(store).values()
        if isinstance(value, type) and value.__module__ == store.__name__ and dataclasses.is_dataclass(value)
    ]
    assert len(records) >= 10
    assert [record.__name__ for record in records if not record.__dataclass_params__.frozen] == []  # type: ignore[attr-defined]
