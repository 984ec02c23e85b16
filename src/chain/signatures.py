"""Wallet signatures: hex decoding (any length, bounded), secp256k1 parsing and signer recovery for EIP-191."""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from typing import Any, Protocol

from eth_hash.auto import keccak

from chain import secp256k1_fast, secp256k1_js

__all__ = [
    "MAX_SIGNATURE_BYTES",
    "CoinCurveBackend",
    "FastPureBackend",
    "JsBackend",
    "MalformedSignature",
    "PureBackend",
    "RecoveryBackend",
    "SignatureError",
    "UnrecoverableSignature",
    "decode_signature",
    "default_backend",
    "eip191_message_hash",
    "parse_signature",
    "parse_signature_bytes",
    "recover_address",
    "recover_personal_sign",
    "signature_to_bytes65",
]

# secp256k1 group order and field prime; kept local so parsing never has to import eth_keys.
SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
SECP256K1_P = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEFFFFFC2F

# The longest signature accepted, in bytes. Contract wallets sign in their own formats (a Safe: 65 bytes per
# owner; an ERC-6492 wrapper: the factory call that deploys the account, plus the inner signature), so the bound
# is generous: 16 KiB is 32 KiB of hex, which leaves room in a 64 KiB request body for a returned SIWE message.
MAX_SIGNATURE_BYTES = 16_384

_EIP191_PREFIX = b"\x19Ethereum Signed Message:\n"
_HEX = re.compile(r"[0-9a-fA-F]*")
_TOP_BIT = 1 << 255


class SignatureError(ValueError):
    """A signature cannot be used to identify a signer."""


class MalformedSignature(SignatureError):
    """The signature is not valid hex, too long, or not a well-formed 65/64-byte (EIP-2098) secp256k1 signature."""


class UnrecoverableSignature(SignatureError):
    """The signature is well formed but no public key can be recovered from it."""


def eip191_message_hash(message: str | bytes) -> bytes:
    """Return the EIP-191 version 0x45 (personal_sign) hash of a message.

    The length in the prefix is the UTF-8 byte length, as wallets compute it. A str containing
    lone surrogates cannot be encoded and raises UnicodeEncodeError (a ValueError).
    """
    if isinstance(message, str):
        data = message.encode("utf-8")
    elif isinstance(message, bytes | bytearray | memoryview):
        data = bytes(message)
    else:
        raise TypeError("message must be str or bytes")
    return keccak(_EIP191_PREFIX + str(len(data)).encode("ascii") + data)


def decode_signature(signature: object) -> bytes:
    """The bytes of a hex signature of any length up to MAX_SIGNATURE_BYTES ("0x" prefix optional; "0x" is empty).

    Nothing about the content is assumed: a contract wallet's signature is whatever its EIP-1271 validator
    takes, so these are the bytes that must reach it unchanged.
    """
    if not isinstance(signature, str):
        raise MalformedSignature("signature must be a hex string")
    prefixed = signature[:2] in ("0x", "0X")
    body = signature[2:] if prefixed else signature
    if not body and not prefixed:
        raise MalformedSignature("signature is empty (an empty contract-wallet signature is written 0x)")
    # Length checks before the regex bound the work done on hostile input.
    if len(body) > 2 * MAX_SIGNATURE_BYTES:
        raise MalformedSignature(f"signature is longer than {MAX_SIGNATURE_BYTES} bytes")
    if len(body) % 2:
        raise MalformedSignature("signature hex has an odd length")
    # bytes.fromhex would tolerate embedded whitespace, so check the characters explicitly.
    if _HEX.fullmatch(body) is None:
        raise MalformedSignature("signature is not valid hex")
    return bytes.fromhex(body)


def parse_signature(signature: str) -> tuple[int, int, int]:
    """Parse a hex signature (65-byte r||s||v or 64-byte EIP-2098 compact) into (r, s, recovery_id)."""
    if not isinstance(signature, str):
        raise MalformedSignature("signature must be a hex string")
    body = signature[2:] if signature[:2] in ("0x", "0X") else signature
    # Length check before the regex bounds the work done on hostile input.
    if len(body) not in (128, 130):
        if len(body) % 2:
            raise MalformedSignature("signature hex has an odd length")
        raise MalformedSignature("signature must be 65 bytes (or 64 bytes EIP-2098 compact)")
    # bytes.fromhex would tolerate embedded whitespace, so check the characters explicitly.
    if _HEX.fullmatch(body) is None:
        raise MalformedSignature("signature is not valid hex")
    return parse_signature_bytes(bytes.fromhex(body))


def parse_signature_bytes(raw: bytes) -> tuple[int, int, int]:
    """Parse 65 bytes r||s||v (v in 0, 1, 27, 28) or 64 bytes EIP-2098 compact into (r, s, recovery_id).

    High-s signatures are accepted on purpose: ecrecover and EIP-1271 contracts built on it accept
    them, and rejecting them here would make us stricter than the chain we mirror. Malleability is
    harmless for signer recovery because both forms recover the same address.
    """
    if len(raw) not in (64, 65):
        raise MalformedSignature("signature must be 65 bytes (or 64 bytes EIP-2098 compact)")
    r = int.from_bytes(raw[0:32], "big")
    if len(raw) == 65:
        s = int.from_bytes(raw[32:64], "big")
        v = raw[64]
        if v in (27, 28):
            recovery_id = v - 27
        elif v in (0, 1):
            recovery_id = v
        else:
            raise MalformedSignature("signature v must be 0, 1, 27 or 28")
    else:
        y_parity_and_s = int.from_bytes(raw[32:64], "big")
        recovery_id = y_parity_and_s >> 255
        s = y_parity_and_s & (_TOP_BIT - 1)
    if not 0 < r < SECP256K1_N:
        raise MalformedSignature("signature r is out of range")
    if not 0 < s < SECP256K1_N:
        raise MalformedSignature("signature s is out of range")
    return r, s, recovery_id


def signature_to_bytes65(signature: str) -> bytes:
    """Return the canonical 65-byte r||s||v form (v = 27/28) of an ECDSA signature.

    Never for a contract wallet: EIP-1271 validators get the bytes the wallet gave, unchanged.
    """
    r, s, recovery_id = parse_signature(signature)
    return r.to_bytes(32, "big") + s.to_bytes(32, "big") + bytes((27 + recovery_id,))


def _check_components(msg_hash: bytes, r: int, s: int, recovery_id: int) -> None:
    """Reject inputs a backend must never see, so each backend fails the same way on them."""
    if not isinstance(msg_hash, bytes | bytearray) or len(msg_hash) != 32:
        raise ValueError("message hash must be 32 bytes")
    if not (0 < r < SECP256K1_N and 0 < s < SECP256K1_N):
        raise MalformedSignature("signature r or s is out of range")
    if recovery_id not in (0, 1):
        raise MalformedSignature("signature recovery id must be 0 or 1")


class RecoveryBackend(Protocol):
    """An implementation of secp256k1 public-key recovery."""

    name: str

    def recover_public_key(self, msg_hash: bytes, r: int, s: int, recovery_id: int) -> bytes:
        """Return the signer's 64-byte uncompressed public key (x||y, no 0x04 prefix)."""
        ...


class CoinCurveBackend:
    """Recovery through coincurve (libsecp256k1); fast, but absent from the Workers runtime."""

    name = "coincurve"

    def __init__(self) -> None:
        # Imported here, never at module level: coincurve is a native extension Pyodide lacks.
        import coincurve

        self._public_key_cls: Any = coincurve.PublicKey

    def recover_public_key(self, msg_hash: bytes, r: int, s: int, recovery_id: int) -> bytes:
        """Return the signer's 64-byte uncompressed public key (x||y, no 0x04 prefix)."""
        _check_components(msg_hash, r, s, recovery_id)
        # coincurve wants the raw recovery id (0/1) in the last byte, not Ethereum's 27/28.
        sig65 = r.to_bytes(32, "big") + s.to_bytes(32, "big") + bytes((recovery_id,))
        try:
            public_key = self._public_key_cls.from_signature_and_message(sig65, bytes(msg_hash), hasher=None)
        except ValueError as err:
            raise UnrecoverableSignature("no public key can be recovered from this signature") from err
        return bytes(public_key.format(compressed=False)[1:])


class PureBackend:
    """Recovery through eth_keys' pure-Python NativeECCBackend; works everywhere, slower."""

    name = "pure"

    def __init__(self) -> None:
        # Deferred so a cold start that never verifies a signature doesn't pay for eth_keys/eth_utils.
        from eth_keys.backends.native import NativeECCBackend
        from eth_keys.datatypes import Signature
        from eth_keys.exceptions import BadSignature

        # Pinning the backend instance matters: eth_keys objects built without one resolve it
        # lazily and would pick coincurve (or $ECC_BACKEND_CLASS) behind our back.
        self._native = NativeECCBackend()
        self._signature_cls: Any = Signature
        self._bad_signature: type[Exception] = BadSignature

    def recover_public_key(self, msg_hash: bytes, r: int, s: int, recovery_id: int) -> bytes:
        """Return the signer's 64-byte uncompressed public key (x||y, no 0x04 prefix)."""
        _check_components(msg_hash, r, s, recovery_id)
        try:
            signature = self._signature_cls(vrs=(recovery_id, r, s), backend=self._native)
            public_key = self._native.ecdsa_recover(bytes(msg_hash), signature).to_bytes()
        except self._bad_signature as err:
            raise UnrecoverableSignature("no public key can be recovered from this signature") from err
        # eth_keys only recognizes some Jacobian encodings of infinity; an unrecognized one would come
        # back as a bogus point, so insist the result is really on the curve.
        x = int.from_bytes(public_key[:32], "big")
        y = int.from_bytes(public_key[32:], "big")
        if len(public_key) != 64 or (y * y - x * x * x - 7) % SECP256K1_P:
            raise UnrecoverableSignature("no public key can be recovered from this signature")
        return public_key


class _FunctionBackend:
    """A backend over a function with secp256k1_fast's contract: x||y, or None when no key can be recovered."""

    name = "function"

    def __init__(self, recover: Callable[[bytes, int, int, int], bytes | None]) -> None:
        self._recover = recover

    def recover_public_key(self, msg_hash: bytes, r: int, s: int, recovery_id: int) -> bytes:
        """Return the signer's 64-byte uncompressed public key (x||y, no 0x04 prefix)."""
        _check_components(msg_hash, r, s, recovery_id)
        public_key = self._recover(bytes(msg_hash), r, s, recovery_id)
        if public_key is None:
            raise UnrecoverableSignature("no public key can be recovered from this signature")
        return public_key


class JsBackend(_FunctionBackend):
    """Recovery through the bundled JavaScript @noble/curves over the Workers FFI; ImportError elsewhere."""

    name = "js"

    def __init__(self, recovery: secp256k1_js.JsRecovery | None = None) -> None:
        # `recovery` is the loaded bundle's glue; by default it is loaded here (only inside a request in workerd).
        super().__init__((recovery or secp256k1_js.load()).recover_public_key)


class FastPureBackend(_FunctionBackend):
    """Recovery through chain.secp256k1_fast (GLV + wNAF over precomputed tables of G); pure Python, any runtime."""

    name = "fast-pure"

    def __init__(self) -> None:
        super().__init__(secp256k1_fast.recover_public_key)


@functools.cache
def default_backend() -> RecoveryBackend:
    """The fastest backend this runtime has: coincurve (CPython), the JS bundle (workerd), else fast pure Python.

    Chosen once, on first use: in workerd that is inside a request, where the FFI import may suspend.
    """
    for backend in (CoinCurveBackend, JsBackend):
        try:
            return backend()
        except ImportError:
            continue
    return FastPureBackend()


def recover_address(message_hash: bytes, signature: str | bytes, *, backend: RecoveryBackend | None = None) -> str:
    """Return the lowercase 0x address that produced `signature` (hex or raw bytes) over the 32-byte hash."""
    if isinstance(signature, bytes | bytearray):
        r, s, recovery_id = parse_signature_bytes(bytes(signature))
    else:
        r, s, recovery_id = parse_signature(signature)
    chosen = backend if backend is not None else default_backend()
    public_key = chosen.recover_public_key(message_hash, r, s, recovery_id)
    return "0x" + keccak(public_key)[-20:].hex()


def recover_personal_sign(message: str, signature: str, *, backend: RecoveryBackend | None = None) -> str:
    """Return the lowercase 0x address that personal_sign-ed `message` (EIP-191) with hex `signature`."""
    if not isinstance(signature, str):
        raise MalformedSignature("signature must be a hex string")
    return recover_address(eip191_message_hash(message), signature, backend=backend)
