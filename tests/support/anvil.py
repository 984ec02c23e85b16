"""Pytest fixtures providing a real anvil chain (the node itself lives in src/local/anvil.py).

Register them in a test module or conftest::

    from tests.support.anvil import anvil, fresh_anvil  # noqa: F401

* ``anvil`` (session scope): shared by every test in the session. State persists between tests;
  isolate with ``snap = anvil.snapshot()`` ... ``anvil.revert(snap)`` when it matters.
* ``fresh_anvil`` (function scope): a brand-new node for one test (~0.3 s to start).

Note: ``pytest-httpx``'s ``httpx_mock`` intercepts every httpx request, including these JSON-RPC calls.
A test that needs both should opt anvil out, e.g.
``@pytest.mark.httpx_mock(should_mock=lambda request: request.url.host != "127.0.0.1")``.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from local.anvil import DEFAULT_CHAIN_ID, HOST, REPO_ROOT, AnvilError, AnvilNode, RpcError, find_anvil_binary, free_port

__all__ = [
    "DEFAULT_CHAIN_ID",
    "HOST",
    "REPO_ROOT",
    "AnvilError",
    "AnvilNode",
    "RpcError",
    "anvil",
    "chain",
    "find_anvil_binary",
    "free_port",
    "fresh_anvil",
]


# -- pytest fixtures -------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def anvil() -> Iterator[AnvilNode]:
    """One anvil node (chain id 31337) shared by the whole test session."""
    with AnvilNode() as node:
        yield node


@pytest.fixture
def fresh_anvil() -> Iterator[AnvilNode]:
    """A new anvil node (chain id 31337) for a single test, stopped afterwards."""
    with AnvilNode() as node:
        yield node


@pytest.fixture
def chain(anvil: AnvilNode) -> Iterator[AnvilNode]:
    """The shared node, with this test's changes rolled back afterwards (snapshot / revert)."""
    snapshot = anvil.snapshot()
    yield anvil
    anvil.revert(snapshot)
