"""secp256k1 public-key recovery by the bundled JavaScript @noble/curves (chain/secp256k1.mjs), in the Workers runtime."""

from __future__ import annotations

from typing import Any

__all__ = ["MODULE", "JsRecovery", "load"]

# The Worker's module name of the bundle (src/chain/secp256k1.mjs, built from scripts/secp256k1_js.mjs); wrangler
# uploads it only under a [[rules]] ESModule entry for this path.
MODULE = "chain/secp256k1.mjs"
_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141


class JsRecovery:
    """Recovery through the bundle's `recover(Uint8Array(97)) -> Uint8Array` (64 bytes, or 0: no key), one FFI call."""

    def __init__(self, module: Any, to_js: Any) -> None:
        self._recover = module.recover
        self._to_js = to_js

    def recover_public_key(self, msg_hash: bytes, r: int, s: int, recovery_id: int) -> bytes | None:
        """The same contract as chain.secp256k1_fast.recover_public_key: x||y, None if unrecoverable, else ValueError."""
        if len(msg_hash) != 32:
            raise ValueError("message hash must be 32 bytes")
        if not (0 < r < _N and 0 < s < _N) or recovery_id not in (0, 1):
            raise ValueError("signature r, s or recovery id is out of range")
        packed = bytes(msg_hash) + r.to_bytes(32, "big") + s.to_bytes(32, "big") + bytes((recovery_id,))
        result = bytes(self._recover(self._to_js(packed)).to_bytes())
        if not result:
            return None
        if len(result) != 64:
            raise ValueError("the JavaScript recovery returned a malformed public key")
        return result


def load() -> JsRecovery:
    """Import the bundle through the runtime's FFI; ImportError outside workerd or when the bundle is not deployed.

    Only inside a request: the SDK's import_from_javascript suspends (JSPI), which the import-time global scope
    cannot. So this runs on first use, never at import, and the module object lives for the isolate.
    """
    try:
        from pyodide.ffi import to_js
        from workers import import_from_javascript
    except ImportError as error:
        raise ImportError("the JavaScript secp256k1 needs the Workers runtime") from error
    return JsRecovery(import_from_javascript(MODULE), to_js)
