// The JS peer of bench/edge_peer.py: what a team would write in JavaScript for the same wallet challenge and
// verify (issue 17). Same D1 schema (./migrations is a copy of db/migrations) and the same statements as the
// Python Worker (challenge: one INSERT; verify: one SELECT, then user insert, wallet upsert, event insert and the
// conditional UPDATE in one batch), the same rate-limit binding call, the same two log lines per request, the same
// response bodies; EIP-191 recovery with @noble/curves, the session token an HMAC-SHA256 through WebCrypto.
// GET /__bench/recover?n= is the bench's in-runtime probe: n recoveries of one fixed signature.
import { secp256k1 } from "@noble/curves/secp256k1.js";
import { keccak_256 } from "@noble/hashes/sha3.js";

const N = secp256k1.Point.CURVE().n;
const TTL_SECONDS = 600;
const SESSION_TTL_SECONDS = 86400;
const NETWORKS = { "eip155:1": "eth-mainnet", "eip155:8453": "base-mainnet", "eip155:31337": "local" };
const UUID4 = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
const HEX40 = /^[0-9a-fA-F]{40}$/;
const HEX = /^[0-9a-fA-F]*$/;
const ERRORS = {
  E1001: [400, "Invalid wallet address"], E1002: [400, "Unsupported chain"],
  E1003: [404, "Wallet challenge not found"], E1004: [410, "Wallet challenge expired"],
  E1006: [400, "Signature does not match the wallet address"], E1007: [409, "Wallet challenge already used"],
  E1008: [400, "Malformed signature"], E9001: [500, "Internal error"], E9003: [429, "Rate limit exceeded"],
  E9004: [400, "Validation failed"], E9008: [404, "Not found"], E9014: [400, "Malformed JSON body"],
};
const encoder = new TextEncoder();
let hmacKey = null; // one CryptoKey per isolate

class ApiError extends Error {
  constructor(code, details = {}) {
    super(code);
    this.code = code;
    this.details = details;
  }
}

const hex = (bytes) => Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
const b64url = (bytes) => btoa(String.fromCharCode(...bytes)).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
const isoTime = (ms) => new Date(ms).toISOString(); // RFC 3339, milliseconds, Z: the Python Worker's format
const log = (fields) => console.log(JSON.stringify(fields));

function checksum(lower) {
  const digest = hex(keccak_256(encoder.encode(lower)));
  let out = "";
  for (let i = 0; i < 40; i++) out += parseInt(digest[i], 16) >= 8 ? lower[i].toUpperCase() : lower[i];
  return out;
}

function normalizeAddress(value) {
  if (typeof value !== "string" || value.length !== 42 || !value.startsWith("0x") || !HEX40.test(value.slice(2))) {
    throw new ApiError("E1001", { field: "wallet_address" });
  }
  const body = value.slice(2);
  const lower = body.toLowerCase();
  if (body !== lower && body !== body.toUpperCase() && body !== checksum(lower)) {
    throw new ApiError("E1001", { field: "wallet_address" });
  }
  return "0x" + lower;
}

async function jsonBody(request) {
  try {
    const data = await request.json();
    if (data === null || typeof data !== "object" || Array.isArray(data)) throw new Error("not an object");
    return data;
  } catch {
    throw new ApiError("E9014");
  }
}

function requireFields(body, required, optional = []) {
  const fields = [];
  for (const name of required) {
    if (typeof body[name] !== "string") fields.push({ field: name, message: "Field required", type: "missing" });
  }
  for (const name of Object.keys(body)) {
    if (!required.includes(name) && !optional.includes(name)) {
      fields.push({ field: name, message: "Extra inputs are not permitted", type: "extra_forbidden" });
    }
  }
  if (fields.length) throw new ApiError("E9004", { fields });
}

function eip191Hash(text) {
  const data = encoder.encode(text);
  const prefix = encoder.encode(`\x19Ethereum Signed Message:\n${data.length}`);
  const whole = new Uint8Array(prefix.length + data.length);
  whole.set(prefix);
  whole.set(data, prefix.length);
  return keccak_256(whole);
}

function parseSignature(signature) {
  const body = signature.startsWith("0x") || signature.startsWith("0X") ? signature.slice(2) : signature;
  if ((body.length !== 130 && body.length !== 128) || !HEX.test(body)) throw new ApiError("E1008");
  const raw = Uint8Array.from(body.match(/../g), (pair) => parseInt(pair, 16));
  const r = BigInt("0x" + body.slice(0, 64));
  let s = BigInt("0x" + body.slice(64, 128));
  let recovery;
  if (raw.length === 65) {
    const v = raw[64];
    if (v === 27 || v === 28) recovery = v - 27;
    else if (v === 0 || v === 1) recovery = v;
    else throw new ApiError("E1008");
  } else {
    recovery = Number(s >> 255n); // EIP-2098
    s &= (1n << 255n) - 1n;
  }
  if (r <= 0n || r >= N || s <= 0n || s >= N) throw new ApiError("E1008");
  return new secp256k1.Signature(r, s, recovery);
}

function recoverAddress(hash, signature) {
  const publicKey = signature.recoverPublicKey(hash).toBytes(false);
  return "0x" + hex(keccak_256(publicKey.subarray(1)).subarray(12));
}

async function sessionToken(env, userId, wallet, nowMs) {
  if (hmacKey === null) {
    const secret = encoder.encode(env.HMAC_SECRET);
    hmacKey = await crypto.subtle.importKey("raw", secret, { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
  }
  const iat = Math.floor(nowMs / 1000);
  const exp = iat + SESSION_TTL_SECONDS;
  const payload = b64url(encoder.encode(JSON.stringify({ u: userId, w: wallet, iat, exp })));
  const mac = new Uint8Array(await crypto.subtle.sign("HMAC", hmacKey, encoder.encode(`session.v1.${payload}`)));
  return [`ths_${payload}.${b64url(mac)}`, isoTime(exp * 1000)];
}

async function rateLimit(env, request) {
  const ip = request.headers.get("cf-connecting-ip") || "unknown";
  const { success } = await env.RATE_LIMIT_GATEKEEPER.limit({ key: `ip:${ip}` });
  if (!success) throw new ApiError("E9003");
  return { "x-ratelimit-limit": "60", "x-ratelimit-remaining": "60", "x-ratelimit-reset": "60" };
}

async function createChallenge(request, env, requestId) {
  const limits = await rateLimit(env, request);
  const body = await jsonBody(request);
  requireFields(body, ["wallet_address", "chain_id"]);
  const address = normalizeAddress(body.wallet_address);
  const network = NETWORKS[body.chain_id];
  if (network === undefined) throw new ApiError("E1002", { field: "chain_id" });
  const id = crypto.randomUUID();
  const nonce = hex(crypto.getRandomValues(new Uint8Array(16)));
  const now = Date.now();
  const issuedAt = isoTime(now);
  const expiresAt = isoTime(now + TTL_SECONDS * 1000);
  const message = [
    "TattleHash Gatekeeper — wallet ownership", "",
    "Sign this message to prove you control this wallet. Signing is free and sends no transaction.", "",
    `Wallet: 0x${checksum(address.slice(2))}`, `Chain: ${body.chain_id} (${network})`, `Nonce: ${nonce}`,
    `Issued At: ${issuedAt}`, `Expires At: ${expiresAt}`, `Challenge ID: ${id}`, "Purpose: gatekeeper_wallet_ownership",
  ].join("\n");
  await env.TATTLEHASH_DB.prepare(
    "INSERT INTO wallet_challenges (id, wallet_address, chain_id, requested_by, format, message, nonce, " +
      "status, issued_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, 'PENDING', ?, ?)",
  ).bind(id, address, body.chain_id, null, "plain", message, nonce, issuedAt, expiresAt).run();
  log({ level: "info", event: "wallet_challenge_created", request_id: requestId, challenge_id: id, chain_id: body.chain_id, format: "plain" });
  const answer = { challenge_id: id, message, nonce, issued_at: issuedAt, expires_at: expiresAt };
  return [201, answer, limits];
}

const WIN_CONDITION =
  "id = ? AND status = 'PENDING' AND expires_at > ? AND COALESCE((SELECT user_id FROM wallets WHERE address = ?), '') IN (?, ?)";
const WIN_GUARD = `SELECT 1 FROM wallet_challenges WHERE ${WIN_CONDITION}`;
const INSERT_USER = `INSERT INTO users (id, created_at, updated_at) SELECT ?, ?, ? WHERE EXISTS (${WIN_GUARD})`;
const UPSERT_WALLET =
  "INSERT INTO wallets (address, user_id, first_verified_at, last_verified_at, linked_at) " +
  `SELECT ?, ?, ?, ?, ? WHERE EXISTS (${WIN_GUARD}) ` +
  "ON CONFLICT (address) DO UPDATE SET user_id = excluded.user_id, last_verified_at = excluded.last_verified_at, " +
  "linked_at = CASE WHEN wallets.user_id = excluded.user_id THEN wallets.linked_at ELSE excluded.linked_at END";
const INSERT_EVENT =
  "INSERT INTO events (id, type, challenge_id, user_id, payload, created_at) " +
  `SELECT ?, ?, ?, ?, ?, ? WHERE EXISTS (${WIN_GUARD})`;
const WIN_UPDATE =
  "UPDATE wallet_challenges SET status = 'VERIFIED', verified_at = ?, verified_user_id = ?, signature_type = ? " +
  `WHERE ${WIN_CONDITION}`;

async function verify(request, env, requestId) {
  const limits = await rateLimit(env, request);
  const body = await jsonBody(request);
  requireFields(body, ["challenge_id", "signature"], ["message"]);
  const challengeId = body.challenge_id.trim().toLowerCase();
  if (!UUID4.test(challengeId)) throw new ApiError("E1003");
  const db = env.TATTLEHASH_DB;
  const row = await db.prepare(
    "SELECT c.id, c.wallet_address, c.chain_id, c.requested_by, c.message, c.status, c.expires_at, " +
      "c.format, c.nonce, w.user_id AS owner_user_id FROM wallet_challenges AS c " +
      "LEFT JOIN wallets AS w ON w.address = c.wallet_address WHERE c.id = ?",
  ).bind(challengeId).first();
  if (row === null) throw new ApiError("E1003");
  const now = Date.now();
  const stamp = isoTime(now);
  if (row.status === "VERIFIED") throw new ApiError("E1007");
  if (row.status === "EXPIRED" || row.expires_at <= stamp) throw new ApiError("E1004", { expired_at: row.expires_at });
  const recovered = recoverAddress(eip191Hash(row.message), parseSignature(body.signature));
  if (recovered !== row.wallet_address) {
    throw new ApiError("E1006", { expected: row.wallet_address, recovered });
  }
  const newUser = row.owner_user_id === null;
  const userId = newUser ? crypto.randomUUID() : row.owner_user_id;
  const guard = [row.id, stamp, row.wallet_address, newUser ? "" : userId, userId];
  const payload = JSON.stringify({
    wallet_address: row.wallet_address, chain_id: row.chain_id, wallet_challenge_id: row.id, user_id: userId,
    signature_type: "EOA", verified_at: stamp, new_user: newUser,
  });
  const statements = [];
  if (newUser) statements.push(db.prepare(INSERT_USER).bind(userId, stamp, stamp, ...guard));
  statements.push(db.prepare(UPSERT_WALLET).bind(row.wallet_address, userId, stamp, stamp, stamp, ...guard));
  statements.push(db.prepare(INSERT_EVENT).bind(crypto.randomUUID(), "wallet.verified", null, userId, payload, stamp, ...guard));
  statements.push(db.prepare(WIN_UPDATE).bind(stamp, userId, "EOA", ...guard));
  const results = await db.batch(statements);
  if (results[results.length - 1].meta.changes !== 1) throw new ApiError("E1007");
  const [token, sessionExpires] = await sessionToken(env, userId, row.wallet_address, now);
  log({
    level: "info", event: "wallet_verified", request_id: requestId, challenge_id: row.id, wallet_address: row.wallet_address,
    user_id: userId, signature_type: "EOA", signature_scheme: "EOA", new_user: newUser,
  });
  const answer = {
    status: "VERIFIED", wallet_address: row.wallet_address, verified_at: stamp, user_id: userId,
    session_token: token, session_expires_at: sessionExpires,
  };
  return [200, answer, limits];
}

async function health(env) {
  const ok = (await env.TATTLEHASH_DB.prepare("SELECT 1 AS ok").first("ok")) === 1;
  const answer = { status: ok ? "ok" : "unavailable", database: ok ? "ok" : "error", version: "peer-js", time: isoTime(Date.now()) };
  return [ok ? 200 : 503, answer, {}];
}

function benchRecover(url) {
  // A fixed go-ethereum ecrecover vector, recovered n times: the runtime's raw recovery cost.
  const n = Number(url.searchParams.get("n") || "1");
  const hash = Uint8Array.from("456e9aea5e197a1f1af7a3e85a3212fa4049a3ba34c2289b4c860fc0b0c64ef3".match(/../g), (p) => parseInt(p, 16));
  const signature = new secp256k1.Signature(
    0x9242685bf161793cc25603c231bc2f568eb630ea16aa137d2664ac8038825608n,
    0x4f8ae3bd7535248d0bd448298cc2e2071e56992d0774dc340c368ae950852adan,
    1,
  );
  let address = "";
  for (let i = 0; i < n; i++) address = recoverAddress(hash, signature);
  return [200, { n, address }, {}];
}

export default {
  async fetch(request, env) {
    const url = new URL(request.url);
    const route = `${request.method} ${url.pathname}`;
    const requestId = crypto.randomUUID();
    let status, answer, headers;
    try {
      if (route === "GET /health") [status, answer, headers] = await health(env);
      else if (route === "POST /gatekeeper/v2/wallet/challenge") [status, answer, headers] = await createChallenge(request, env, requestId);
      else if (route === "POST /gatekeeper/v2/wallet/verify") [status, answer, headers] = await verify(request, env, requestId);
      else if (route === "GET /__bench/recover") [status, answer, headers] = benchRecover(url);
      else throw new ApiError("E9008");
    } catch (error) {
      const code = error instanceof ApiError ? error.code : "E9001";
      if (code === "E9001") log({ level: "error", event: "unhandled_exception", request_id: requestId, error_type: error.name });
      const [errorStatus, message] = ERRORS[code];
      [status, answer, headers] = [errorStatus, { error: { code, message, details: error.details || {} } }, {}];
    }
    log({ level: "info", event: "request", request_id: requestId, method: request.method, route: url.pathname, status });
    return new Response(JSON.stringify(answer), {
      status,
      headers: {
        "content-type": "application/json", ...headers, "x-request-id": requestId,
        "x-content-type-options": "nosniff", "cache-control": "no-store",
      },
    });
  },
};
