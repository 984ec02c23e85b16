"""The Python floor of bench/edge_peer.py (issue 17): GET /health and POST wallet challenge with nothing but the SDK.

What any Python Worker pays in workerd for the same work as the JS peer (bench/peer_js/worker.js): the same D1
statement, rate-limit call, two log lines and response body, with no framework, validation library or app code.
The bench compares it with the JS peer to show which part of this Worker's cost is the Python runtime's own.
"""

import json
import secrets
import uuid
from datetime import UTC, datetime, timedelta

import js
from pyodide.ffi import jsnull, to_js
from workers import WorkerEntrypoint

NETWORKS = {"eip155:1": "eth-mainnet", "eip155:8453": "base-mainnet", "eip155:31337": "local"}
INSERT = (
    "INSERT INTO wallet_challenges (id, wallet_address, chain_id, requested_by, format, message, nonce, "
    "status, issued_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, 'PENDING', ?, ?)"
)


def stamp(moment):
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def log(**fields):
    js.console.log(json.dumps(fields, separators=(",", ":")))


def answer(status, body, headers=None):
    pairs = [["content-type", "application/json"], ["x-content-type-options", "nosniff"], ["cache-control", "no-store"]]
    pairs += [[name, value] for name, value in (headers or {}).items()]
    init = to_js({"status": status, "headers": pairs}, dict_converter=js.Object.fromEntries)
    return js.Response.new(json.dumps(body, separators=(",", ":")), init)


class Default(WorkerEntrypoint):
    async def fetch(self, request):
        request = request.js_object
        path = str(js.URL.new(request.url).pathname)
        request_id = str(uuid.uuid4())
        if path == "/health":
            ok = (await self.env.TATTLEHASH_DB.prepare("SELECT 1 AS ok").first("ok")) == 1
            now = stamp(datetime.now(UTC))
            status, body, headers = 200, {"status": "ok" if ok else "unavailable", "time": now}, {}
        else:
            ip = request.headers.get("cf-connecting-ip") or "unknown"
            outcome = await self.env.RATE_LIMIT_GATEKEEPER.limit(
                to_js({"key": f"ip:{ip}"}, dict_converter=js.Object.fromEntries)
            )
            data = json.loads(bytes((await request.arrayBuffer()).to_bytes()))
            address, chain = data["wallet_address"].lower(), data["chain_id"]
            challenge_id, nonce = str(uuid.uuid4()), secrets.token_hex(16)
            moment = datetime.now(UTC)
            issued, expires = stamp(moment), stamp(moment + timedelta(seconds=600))
            message = "\n".join(
                [
                    "TattleHash Gatekeeper — wallet ownership",
                    "",
                    "Sign this message to prove you control this wallet. Signing is free and sends no transaction.",
                    "",
                    f"Wallet: {address}",
                    f"Chain: {chain} ({NETWORKS[chain]})",
                    f"Nonce: {nonce}",
                    f"Issued At: {issued}",
                    f"Expires At: {expires}",
                    f"Challenge ID: {challenge_id}",
                    "Purpose: gatekeeper_wallet_ownership",
                ]
            )
            statement = self.env.TATTLEHASH_DB.prepare(INSERT)
            await statement.bind(challenge_id, address, chain, jsnull, "plain", message, nonce, issued, expires).run()
            log(level="info", event="wallet_challenge_created", request_id=request_id, challenge_id=challenge_id)
            status = 201 if outcome.success else 429
            body = {
                "challenge_id": challenge_id,
                "message": message,
                "nonce": nonce,
                "issued_at": issued,
                "expires_at": expires,
            }
            headers = {"x-ratelimit-limit": "60"}
        log(level="info", event="request", request_id=request_id, route=path, status=status)
        return answer(status, body, {**headers, "x-request-id": request_id})
