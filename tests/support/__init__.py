"""Test-only support: a real local anvil chain (anvil.py) and Solidity fixture helpers (contracts.py)."""
