"""chain.secp256k1_js and its bundle: the committed src/chain/secp256k1.mjs is current and agrees with libsecp256k1."""

from __future__ import annotations

import json
import random
import subprocess
from pathlib import Path
from typing import Any

import coincurve
import pytest

from chain import secp256k1_js
from chain.signatures import SECP256K1_N
from local.config import PROJECT_ROOT
from tests.support.js_bundle import FakeBundle, fake_recovery, reference

N = SECP256K1_N
BUNDLE = PROJECT_ROOT / "src" / "chain" / "secp256k1.mjs"
SOURCE = PROJECT_ROOT / "scripts" / "secp256k1_js.mjs"
ESBUILD = PROJECT_ROOT / "node_modules" / ".bin" / "esbuild"
SEED = 20260418
# Feeds hex inputs (one per line) to the bundle's recover() and prints each answer as hex: the bundle as shipped.
RUNNER = """
import { recover } from %s;
import { readFileSync } from "node:fs";
const out = [];
for (const line of readFileSync(0, "utf8").split("\\n")) {
  if (!line) continue;
  out.push(Buffer.from(recover(new Uint8Array(Buffer.from(line, "hex")))).toString("hex"));
}
console.log(JSON.stringify(out));
"""


def run_bundle(inputs: list[bytes]) -> list[bytes]:
    script = RUNNER % json.dumps(BUNDLE.as_uri())
    result = subprocess.run(
        ["node", "--input-type=module", "-e", script],
        input="\n".join(item.hex() for item in inputs),
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return [bytes.fromhex(item) for item in json.loads(result.stdout)]


def test_the_committed_bundle_is_what_esbuild_builds_from_the_source(tmp_path: Path) -> None:
    built = tmp_path / "secp256k1.mjs"
    command = [str(ESBUILD), str(SOURCE), "--bundle", "--format=esm", "--platform=neutral", "--minify"]
    command += ["--legal-comments=eof", f"--outfile={built}", "--log-level=warning"]
    subprocess.run(command, cwd=PROJECT_ROOT, check=True, timeout=120)
    assert built.read_bytes() == BUNDLE.read_bytes(), "src/chain/secp256k1.mjs is stale: rebuild it (see its source)"
    # The MIT notice of @noble/curves travels with the bundle.
    assert "noble-curves - MIT License" in BUNDLE.read_text()


def test_the_bundle_agrees_with_libsecp256k1_on_random_signatures_and_garbage() -> None:
    rng = random.Random(SEED)
    cases: list[tuple[bytes, int, int, int]] = []
    for index in range(900):
        msg_hash = rng.randbytes(32)
        if index % 3 == 2:  # arbitrary components: about half of all r are no x coordinate
            cases.append((msg_hash, rng.randrange(1, N), rng.randrange(1, N), rng.randrange(2)))
            continue
        key = coincurve.PrivateKey(rng.randrange(1, N).to_bytes(32, "big"))
        signature = key.sign_recoverable(msg_hash, hasher=None)
        r, s, rid = int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:64], "big"), signature[64]
        # The high-s twin (other parity) names the same key; with the same parity, someone else.
        cases.append((msg_hash, r, s, rid) if index % 2 else (msg_hash, r, N - s, 1 - rid))
    # The edges: a zero hash, a hash above N, r and s at their bounds, r = 5 (no curve point has x = 5).
    edges = [(bytes(32), 1, 1, 0), (b"\xff" * 32, N - 1, N - 1, 1), (bytes(32), 5, 7, 0), (b"\x01" * 32, 1, N - 1, 1)]
    cases += edges
    packed = [h + r.to_bytes(32, "big") + s.to_bytes(32, "big") + bytes((rid,)) for h, r, s, rid in cases]
    answers = run_bundle(packed)
    expected = [reference(*case) for case in cases]
    assert [answer or None for answer in answers] == expected
    assert sum(answer is None for answer in expected) > 100


def make(bundle: Any) -> secp256k1_js.JsRecovery:
    return fake_recovery(bundle)


def test_the_glue_packs_hash_r_s_and_parity_and_unpacks_the_key() -> None:
    msg_hash = bytes(range(32))
    key = coincurve.PrivateKey((7).to_bytes(32, "big"))
    signature = key.sign_recoverable(msg_hash, hasher=None)
    r, s, rid = int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:64], "big"), signature[64]
    bundle = FakeBundle()
    recovery = make(bundle)
    assert recovery.recover_public_key(msg_hash, r, s, rid) == key.public_key.format(compressed=False)[1:]
    assert bundle.calls == [msg_hash + signature[:64] + bytes((rid,))]
    assert recovery.recover_public_key(bytearray(msg_hash), r, s, rid) == key.public_key.format(compressed=False)[1:]
    # No key: the bundle answers with no bytes.
    assert recovery.recover_public_key(msg_hash, 5, 7, 0) is None


@pytest.mark.parametrize(
    ("msg_hash", "r", "s", "rid"),
    [(bytes(31), 1, 1, 0), (bytes(32), 0, 1, 0), (bytes(32), 1, N, 0), (bytes(32), 1, 1, 2), (bytes(32), N, 1, 1)],
)
def test_out_of_range_input_never_reaches_the_bundle(msg_hash: bytes, r: int, s: int, rid: int) -> None:
    bundle = FakeBundle()
    with pytest.raises(
        ValueError, match=r"^(message hash must be 32 bytes|signature r, s or recovery id is out of range)$"
    ):
        make(bundle).recover_public_key(msg_hash, r, s, rid)
    assert bundle.calls == []


def test_a_malformed_answer_is_an_error_not_a_key() -> None:
    with pytest.raises(ValueError, match="malformed public key"):
        make(FakeBundle(answer=b"\x04" * 65)).recover_public_key(bytes(32), 1, 1, 0)


def test_loading_outside_the_workers_runtime_is_an_import_error() -> None:
    with pytest.raises(ImportError, match="needs the Workers runtime"):
        secp256k1_js.load()
    assert secp256k1_js.MODULE == "chain/secp256k1.mjs" and BUNDLE.exists()
