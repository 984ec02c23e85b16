"""`make demo`: walks the full GATEKEEPER flow against a running `make dev` server and its local chain."""

from __future__ import annotations

import json
import secrets
import sys
from typing import Any

import httpx

from chain.address import to_checksum_address
from chain.signatures import eip191_message_hash

ETH = 10**18


class DemoError(RuntimeError):
    """A step of the demo did not get the answer it expected."""


class Wallet:
    """A throwaway local key; signs like a wallet's personal_sign (EIP-191) using eth-keys."""

    def __init__(self) -> None:
        from eth_keys import keys

        self._key = keys.PrivateKey(secrets.token_bytes(32))
        self.address = to_checksum_address(self._key.public_key.to_address())

    def personal_sign(self, message: str) -> str:
        return "0x" + self._key.sign_msg_hash(eip191_message_hash(message)).to_bytes().hex()


def _step(number: int, text: str, detail: Any = None) -> None:
    print(f"{number:>2}. {text}")
    if detail is not None:
        print("    " + json.dumps(detail, separators=(", ", ": "))[:300])


def _expect(response: httpx.Response, status: int) -> dict[str, Any]:
    if response.status_code != status:
        raise DemoError(
            f"{response.request.method} {response.request.url.path} → {response.status_code}: {response.text}"
        )
    return response.json() if response.content else {}


def run(server: str, chain_url: str, admin_token: str) -> str:
    """Returns the proof URL; raises DemoError when any step does not behave."""
    http = httpx.Client(base_url=server, timeout=30)
    _expect(http.get("/health"), 200)
    admin = {"authorization": f"Bearer {admin_token}"}
    creator = _expect(http.post("/admin/api-keys", json={"display_name": "Demo creator"}, headers=admin), 201)
    counter = _expect(http.post("/admin/api-keys", json={"display_name": "Demo counterparty"}, headers=admin), 201)
    as_creator = {"authorization": f"Bearer {creator['api_key']}"}
    as_counter = {"authorization": f"Bearer {counter['api_key']}"}
    _step(1, "created two users with API keys", {"creator": creator["user_id"], "counterparty": counter["user_id"]})

    creator_wallet, counter_wallet = Wallet(), Wallet()
    for wallet, amount in ((creator_wallet, 5 * ETH), (counter_wallet, 3 * ETH)):
        httpx.post(
            chain_url,
            json={"jsonrpc": "2.0", "id": 1, "method": "anvil_setBalance", "params": [wallet.address, hex(amount)]},
            timeout=10,
        ).raise_for_status()
    _step(
        2,
        "funded two local wallets on anvil (eip155:31337)",
        {"creator": creator_wallet.address, "counterparty": counter_wallet.address},
    )

    side = {
        "network": "local",
        "funds_checks": [{"asset_type": "NATIVE", "min_balance": str(ETH), "currency_symbol": "ETH"}],
    }
    body = {
        "mode": "GATEKEEPER",
        "title": "Demo: 1 ETH each, verified",
        "counterparty_user_id": counter["user_id"],
        "gatekeeper_requirements": {
            "creator": {**side, "wallet_address": creator_wallet.address},
            "counterparty": {**side, "wallet_address": counter_wallet.address},
        },
    }
    challenge = _expect(http.post("/challenges", json=body, headers=as_creator), 201)
    challenge_id = challenge["id"]
    _step(3, "creator created the GATEKEEPER challenge", {"id": challenge_id, "status": challenge["status"]})
    sent = _expect(http.post(f"/challenges/{challenge_id}/send", json={}, headers=as_creator), 200)
    _step(4, "creator sent the invitation", {"status": sent["status"]})
    accepted = _expect(http.post(f"/challenges/{challenge_id}/accept", json={}, headers=as_counter), 200)
    _step(5, "counterparty accepted; the gatekeeper waits for both wallets", {"status": accepted["status"]})

    for number, (wallet, headers, who) in enumerate(
        ((creator_wallet, as_creator, "creator"), (counter_wallet, as_counter, "counterparty")), start=6
    ):
        issued = _expect(
            http.post(
                "/gatekeeper/v2/wallet/challenge",
                headers=headers,
                json={"wallet_address": wallet.address, "chain_id": "eip155:31337"},
            ),
            201,
        )
        verified = _expect(
            http.post(
                "/gatekeeper/v2/wallet/verify",
                headers=headers,
                json={"challenge_id": issued["challenge_id"], "signature": wallet.personal_sign(issued["message"])},
            ),
            200,
        )
        _step(number, f"{who} signed the EIP-191 challenge; wallet verified", {"wallet": verified["wallet_address"]})

    locked = _expect(http.post(f"/challenges/{challenge_id}/verify", json={}, headers=as_creator), 200)
    checks = {
        name: [check["status"] for check in side["funds_checks"]] for name, side in locked["requirements"].items()
    }
    _step(
        8,
        "funds checks ran server-side (balances never leave the server); intent locked",
        {"status": locked["status"], "checks": checks, "I": locked["initiator_hash"], "C": locked["counter_hash"]},
    )
    _expect(http.post(f"/challenges/{challenge_id}/complete", json={}, headers=as_creator), 200)
    done = _expect(http.post(f"/challenges/{challenge_id}/complete", json={}, headers=as_counter), 200)
    _step(9, "both parties confirmed completion", {"status": done["status"], "FINAL": done["final_hash"]})
    proof = _expect(http.get(f"/proof/{challenge_id}", headers={"accept": "application/json"}), 200)
    _step(10, "proof published", {"url": proof["proof_url"]})
    return proof["proof_url"]


def main(server: str, chain_url: str, admin_token: str) -> int:
    try:
        url = run(server, chain_url, admin_token)
    except (DemoError, httpx.HTTPError) as error:
        print(f"demo failed: {error}", file=sys.stderr)
        return 1
    print(f"\nOpen the proof: {url}")
    return 0
