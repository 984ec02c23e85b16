// Source of src/chain/secp256k1.mjs, the JavaScript secp256k1 that src/chain/secp256k1_js.py calls from Python
// inside workerd. Bundled (committed) with the pinned esbuild; tests/test_secp256k1_js.py rebuilds it and fails
// when the committed file differs:
//   node_modules/.bin/esbuild scripts/secp256k1_js.mjs --bundle --format=esm --platform=neutral --minify \
//     --legal-comments=eof --outfile=src/chain/secp256k1.mjs
import { secp256k1 } from "@noble/curves/secp256k1.js";

const bigint = (bytes) => {
  let value = 0n;
  for (const byte of bytes) value = (value << 8n) | BigInt(byte);
  return value;
};

// input: hash (32) || r (32) || s (32) || recovery id (1 byte, 0 or 1), each range-checked by the caller.
// Returns the public key x || y (64 bytes), or no bytes when none can be recovered (r is no x coordinate of the
// curve, or the result is the point at infinity), as libsecp256k1 answers for recovery ids 0 and 1. Always a
// Uint8Array: a JS null reaches Python as pyodide's jsnull, not None.
export function recover(input) {
  try {
    const signature = new secp256k1.Signature(bigint(input.subarray(32, 64)), bigint(input.subarray(64, 96)), input[96]);
    return signature.recoverPublicKey(input.subarray(0, 32)).toBytes(false).subarray(1);
  } catch {
    return new Uint8Array(0);
  }
}
