"""Stand-ins for the bundled JS secp256k1 seen from Python: its `recover` contract, answered by libsecp256k1.

The contract itself (97 packed bytes in; 64 bytes of key, or none) is checked against the real bundle in node by
tests/test_secp256k1_js.py; these let the Python glue and backend selection run on CPython.
"""

from __future__ import annotations

from chain import secp256k1_js
from chain.signatures import CoinCurveBackend, UnrecoverableSignature

COIN = CoinCurveBackend()


def reference(msg_hash: bytes, r: int, s: int, rid: int) -> bytes | None:
    """libsecp256k1's answer: x||y, or None when no key can be recovered."""
    try:
        return COIN.recover_public_key(msg_hash, r, s, rid)
    except UnrecoverableSignature:
        return None


class FakeUint8Array:
    """What pyodide's to_js makes of bytes and what a JS Uint8Array answer offers back: .to_bytes()."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    def to_bytes(self) -> bytes:
        return self.data


class FakeBundle:
    """The bundle's `recover`, answered by libsecp256k1 (or with a fixed answer); keeps what it was given."""

    def __init__(self, answer: bytes | None = None) -> None:
        self.calls: list[bytes] = []
        self.answer = answer

    def recover(self, packed: FakeUint8Array) -> FakeUint8Array:
        self.calls.append(packed.data)
        if self.answer is not None:
            return FakeUint8Array(self.answer)
        data = packed.data
        found = reference(data[:32], int.from_bytes(data[32:64], "big"), int.from_bytes(data[64:96], "big"), data[96])
        return FakeUint8Array(found or b"")


def fake_recovery(bundle: FakeBundle | None = None) -> secp256k1_js.JsRecovery:
    """chain.secp256k1_js's glue over a stand-in bundle."""
    return secp256k1_js.JsRecovery(bundle or FakeBundle(), FakeUint8Array)
