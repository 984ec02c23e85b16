"""Every route of api.routes.ROUTES x every kind of credential → its documented status, never another user's data."""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pytest

from api.routes import ROUTES
from core.auth import issue_session
from core.clock import ManualClock
from core.config import Env
from core.routing import Route
from local.anvil import AnvilNode
from tests.conftest import ADMIN_TOKEN
from tests.support.client import ApiClient, ApiResponse

WALLET_A = "0x" + "a1" * 20
WALLET_C = "0x" + "c3" * 20
# Codes that mean "the auth layer (or the ownership check) refused": never the answer to a caller who may act.
REFUSALS = {"E9005", "E9006", "E9007", "E3010", "E6002", "E2008"}
# "owner" and "owner_session" (A's API key and a valid wallet session of A) are the controls: they must get through.
CREDENTIALS = (
    "none",
    "forged_api_key",
    "forged_session",
    "expired_session",
    "other_user",
    "admin",
    "owner",
    "owner_session",
)
PARAM = re.compile(r"\{([a-z_]+)\}")


@pytest.fixture
def chain_env(env_vars: dict[str, str], chain: AnvilNode) -> dict[str, str]:
    env_vars.update(
        RPC_URL_LOCAL=chain.url, RPC_PUBLIC_FALLBACKS="false", RPC_TIMEOUT_SECONDS="5", ALLOW_INSECURE_WEBHOOKS="true"
    )
    return env_vars


@dataclass
class World:
    """User A (the owner of everything below), stranger B, A's counterparty C, and the credentials to try."""

    a_id: str
    a_key: str
    a_email: str
    b_id: str
    b_key: str
    tokens: dict[str, str | None]
    titles: list[str]
    challenge_ids: list[str]
    webhook_ids: list[str]
    public_challenge: str
    wallet_challenge: str
    new_challenge: Callable[[], Awaitable[str]]
    new_webhook: Callable[[], Awaitable[str]]
    funds_attestation: str = ""  # A's own funds check (re-verifying it only reads)

    def private_markers(self, sent: str) -> list[str]:
        """A's data a stranger must never see; ids the request itself carried may be echoed back harmlessly."""
        markers = [self.a_email, self.a_id, *self.titles, *self.challenge_ids, *self.webhook_ids, self.wallet_challenge]
        return [marker for marker in markers if marker not in sent]


@pytest.fixture
async def world(chain_env: dict[str, str], client: ApiClient, make_user, clock: ManualClock) -> World:
    a_id, a_key = await make_user(email="owner-a@example.com", display_name="Owner A")
    b_id, b_key = await make_user(email="stranger-b@example.com")
    c_id, _ = await make_user(email="counter-c@example.com")
    titles: list[str] = []
    challenge_ids: list[str] = []

    async def create(body: dict[str, Any], *, send: bool) -> str:
        created = await client.post("/challenges", json=body, token=a_key)
        assert created.status == 201, created.text
        challenge_id = created.json()["id"]
        if send:
            assert (await client.post(f"/challenges/{challenge_id}/send", token=a_key)).status == 200
        titles.append(body["title"])
        challenge_ids.append(challenge_id)
        return challenge_id

    async def new_gatekeeper() -> str:
        side = {"wallet_address": WALLET_A, "network": "local",
                "funds_checks": [{"asset_type": "NATIVE", "min_balance": "1", "currency_symbol": "ETH"}]}  # fmt: skip
        body = {
            "mode": "GATEKEEPER",
            "title": f"A's private gatekeeper deal #{len(titles)}",
            "counterparty_user_id": c_id,
            "gatekeeper_requirements": {"creator": side, "counterparty": {**side, "wallet_address": WALLET_C}},
        }
        return await create(body, send=True)

    webhook_ids: list[str] = []

    async def new_webhook() -> str:
        if webhook_ids:  # done with: a user may have only so many endpoints
            await client.delete(f"/webhooks/{webhook_ids[-1]}", token=a_key)
        hook = await client.post(
            "/webhooks", json={"url": f"http://localhost:9/a-hook-{len(webhook_ids)}"}, token=a_key
        )
        assert hook.status == 201, hook.text
        webhook_ids.append(hook.json()["id"])
        return webhook_ids[-1]

    public = await create({"mode": "SOLO", "title": "A's public solo pledge"}, send=False)
    confirmed = await client.post(f"/challenges/{public}/confirm", token=a_key)
    assert confirmed.json()["status"] == "COMPLETED", confirmed.text
    await new_gatekeeper()
    await new_webhook()
    wallet = await client.post(
        "/gatekeeper/v2/wallet/challenge", json={"wallet_address": WALLET_A, "chain_id": "eip155:31337"}, token=a_key
    )
    assert wallet.status == 201, wallet.text
    checked = await client.post(
        "/gatekeeper/v2/funds/check",
        json={"wallet_address": WALLET_A, "network": "local", "asset_type": "NATIVE", "min_balance": "0"},
        token=a_key,
    )
    assert checked.status == 200, checked.text

    env = Env(chain_env)
    expired, _ = issue_session(env, a_id, WALLET_A, clock.now())
    clock.advance(hours=24, seconds=1)  # past SESSION_TTL
    session, _ = issue_session(env, a_id, WALLET_A, clock.now())
    payload, _, mac = session.partition(".")
    forged_mac = mac[:-4] + ("AAAA" if not mac.endswith("AAAA") else "BBBB")
    return World(
        a_id=a_id,
        a_key=a_key,
        a_email="owner-a@example.com",
        b_id=b_id,
        b_key=b_key,
        tokens={
            "none": None,
            "forged_api_key": "thk_" + "Q" * 43,
            "forged_session": f"{payload}.{forged_mac}",  # A's valid, unexpired claims under a bad MAC
            "expired_session": expired,
            "other_user": b_key,
            "admin": ADMIN_TOKEN,
            "owner": a_key,
            "owner_session": session,
        },
        titles=titles,
        challenge_ids=challenge_ids,
        webhook_ids=webhook_ids,
        public_challenge=public,
        wallet_challenge=wallet.json()["challenge_id"],
        new_challenge=new_gatekeeper,
        funds_attestation=checked.json()["attestation_id"],
        new_webhook=new_webhook,
    )


Expectation = tuple[int, str] | str  # a refusal (status, code), or "allowed", or "anonymous" (as with no token)

# Routes whose body names one of A's resources: who is refused, and how, beyond what route.auth decides.
# The admin token acts for no user in wallet linking (src/gatekeeper/wallet_api.py), so it is refused like an
# anonymous caller there; for a funds check it may link any challenge (an operator), strangers get 404 E3010.
BODY_OWNERSHIP: dict[tuple[str, str], dict[str, Expectation]] = {
    ("POST", "/gatekeeper/v2/wallet/challenge"): {
        "none": (403, "E9007"),
        "other_user": (403, "E9007"),
        "admin": (403, "E9007"),
    },
    ("POST", "/gatekeeper/v2/wallet/verify"): {
        "none": (401, "E9005"),
        "other_user": (403, "E9007"),
        "admin": (401, "E9005"),
    },
    ("POST", "/gatekeeper/v2/funds/check"): {"none": (401, "E9005"), "other_user": (404, "E3010")},
}

# SPEC §7 "who" of each challenge action, for the admin token (an "any" route lets it past the auth layer):
# moderators resolve and operators may cancel; every other action belongs to a party → 403.
ADMIN_ACTIONS: dict[str, Expectation] = {
    "send": (403, "E9007"),
    "confirm": (403, "E9007"),
    "accept": (403, "E3012"),
    "decline": (403, "E3012"),
    "verify": (403, "E9007"),
    "respond": (403, "E9007"),
    "complete": (403, "E9007"),
    "resolve": "allowed",
    "dispute": (403, "E9007"),
    "cancel": "allowed",
}


def probe_body(route: Route, world: World, path_ids: dict[str, str]) -> dict[str, Any] | None:
    """A body that passes validation, so what is tested is the caller, not the input; it names A's resources."""
    bodies: dict[tuple[str, str], dict[str, Any]] = {
        ("POST", "/admin/api-keys"): {"user_id": world.a_id},
        ("PATCH", "/me"): {"display_name": "renamed"},
        ("POST", "/me/verify"): {"channel": "email", "code": "123456"},
        ("POST", "/gatekeeper/v2/wallet/challenge"): {
            "wallet_address": WALLET_A,
            "chain_id": "eip155:31337",
            "user_id": world.a_id,
        },
        ("POST", "/gatekeeper/v2/wallet/verify"): {
            "challenge_id": world.wallet_challenge,
            "signature": "0x" + "11" * 64 + "1b",
        },
        ("POST", "/gatekeeper/v2/funds/check"): {
            "wallet_address": WALLET_A,
            "network": "local",
            "asset_type": "NATIVE",
            "min_balance": "1",
            "challenge_id": world.challenge_ids[-1],
        },
        ("POST", "/challenges"): {"mode": "SOLO", "title": "someone's new challenge"},
        ("POST", "/challenges/{challenge_id}/stake"): {"type": "BASE", "amount": "10", "currency_code": "USDC"},
        ("POST", "/challenges/{challenge_id}/respond"): {"response": "done"},
        ("POST", "/challenges/{challenge_id}/resolve"): {"outcome": "DRAW"},
        ("POST", "/webhooks"): {"url": "http://localhost:9/new-hook"},
        ("POST", "/gatekeeper/v2/funds/attestations/{attestation_id}/verify"): {"balance": "0"},
    }
    if route.method not in {"POST", "PUT", "PATCH"}:
        return None
    if (route.method, route.path) in bodies:
        return bodies[(route.method, route.path)]
    if route.body is None or not any(field.is_required() for field in route.body.model_fields.values()):
        return {}
    raise AssertionError(f"{route.method} {route.path}: add a probe body (its model has required fields)")


async def path_ids(route: Route, world: World) -> dict[str, str]:
    """Real ids of A's resources for the route's path parameters; a new parameter kind fails loudly."""
    ids: dict[str, str] = {}
    for name in PARAM.findall(route.path):
        if name == "challenge_id":
            # The public proof needs a challenge past intent lock; the others get a fresh one each (actions change it).
            ids[name] = world.public_challenge if route.path.startswith("/proof/") else await world.new_challenge()
        elif name == "webhook_id":
            ids[name] = await world.new_webhook()
        elif name == "attestation_id":
            ids[name] = world.funds_attestation
        else:
            raise AssertionError(f"{route.method} {route.path}: no fixture for path parameter {name!r}")
    return ids


async def prepare(route: Route, world: World) -> tuple[str, dict[str, Any] | None]:
    ids = await path_ids(route, world)
    return route.path.format(**ids), probe_body(route, world, ids)


def expected(route: Route, credential: str) -> Expectation:
    """What the documented rules (route.auth, then ownership of A's resources) give this caller."""
    auth = route.auth
    if auth == "none":
        return "anonymous"
    if credential in {"forged_api_key", "forged_session", "expired_session"}:
        return (401, "E9006")
    override = BODY_OWNERSHIP.get((route.method, route.path), {}).get(credential)
    if override is not None:
        return override
    if credential == "none":
        return "anonymous" if auth == "optional" else (401, "E9005")
    if credential == "admin":
        if auth == "user":
            return (403, "E9007")
        if auth == "any" and route.method == "POST" and route.path.startswith("/challenges/{challenge_id}/"):
            action = route.path.rsplit("/", 1)[-1]
            assert action in ADMIN_ACTIONS, f"{route.path}: say in ADMIN_ACTIONS what the admin token may do"
            return ADMIN_ACTIONS[action]
        return "allowed"
    if credential == "other_user":
        if auth == "admin":
            return (403, "E9007")
        if "{challenge_id}" in route.path:
            return (404, "E3010")
        if "{webhook_id}" in route.path:
            return (404, "E6002")
        if "{attestation_id}" in route.path:
            return (404, "E2008")
        return "allowed"
    assert credential in {"owner", "owner_session"}
    return (403, "E9007") if auth == "admin" else "allowed"


async def call(client: ApiClient, route: Route, path: str, body: dict[str, Any] | None, token: str | None):
    return await client.request(route.method, path, json_body=body, token=token, headers={"accept": "application/json"})


def describe(response: ApiResponse) -> str:
    return f"{response.status} {response.error_code or ''} {response.text[:300]}"


def check(want: Expectation, response: ApiResponse, anonymous: ApiResponse) -> str | None:
    """Why the response breaks the expectation, or None."""
    got = (response.status, response.error_code)
    if response.status >= 500:
        return f"server error {describe(response)}"
    if want == "anonymous":
        if got != (anonymous.status, anonymous.error_code):
            return f"credentials changed the answer: {describe(response)} vs anonymous {describe(anonymous)}"
    elif want == "allowed":
        if response.error_code in REFUSALS:
            return f"refused: {describe(response)}"
    elif got != want:
        return f"want {want}, got {describe(response)}"
    return None


async def test_every_route_against_every_credential(client: ApiClient, world: World) -> None:
    table: list[str] = []
    problems: list[str] = []
    for route in ROUTES:
        path, body = await prepare(route, world)
        anonymous = await call(client, route, path, body, None)
        for credential in CREDENTIALS:
            # Each caller gets its own copy of A's resources: an action or a delete by one changes what the next sees.
            path, body = await prepare(route, world)
            response = await call(client, route, path, body, world.tokens[credential])
            label = f"{route.method} {route.path} [{route.auth}] as {credential}"
            table.append(f"{label}: {response.status} {response.error_code or ''}")
            problem = check(expected(route, credential), response, anonymous)
            if problem:
                problems.append(f"{label}: {problem}")
            if credential not in {"owner", "owner_session", "admin"} and route.auth != "none":
                sent = path + json.dumps(body or {})
                leaked = [marker for marker in world.private_markers(sent) if marker in response.text]
                if leaked:
                    problems.append(f"{label}: leaks A's data {leaked}: {describe(response)}")
    print(f"{len(ROUTES)} routes x {len(CREDENTIALS)} credentials = {len(table)} requests")
    assert len(table) == len(ROUTES) * len(CREDENTIALS)
    assert not problems, "\n".join(problems)


async def test_credentials_unlock_nothing_on_public_routes(client: ApiClient, world: World) -> None:
    """auth "none" routes answer the same to everyone; a proof before intent lock is 404 for all, A's data never shown."""
    draft = await client.post("/challenges", json={"mode": "SOLO", "title": "A's unlocked draft"}, token=world.a_key)
    draft_id = draft.json()["id"]
    for credential in CREDENTIALS:
        for accept in ("application/json", "text/html"):
            response = await client.get(
                f"/proof/{draft_id}", token=world.tokens[credential], headers={"accept": accept}
            )
            assert (response.status, response.error_code) == (404, "E3010"), (credential, describe(response))
            assert "A's unlocked draft" not in response.text and world.a_email not in response.text
    public = [await client.get(f"/proof/{world.public_challenge}", token=world.tokens[c]) for c in CREDENTIALS]
    assert {response.status for response in public} == {200}
    assert len({response.body for response in public}) == 1  # no credential changes a byte of the public page
