"""Verify of a SIWE challenge: the signed EIP-4361 text is parsed strictly and checked against the challenge.

The text is the issued message, or one an app built on the challenge's nonce (as SIWE libraries do) sent back
as `message`; either way expiry, not-before, domain binding and nonce are checked on verify, then the address,
chain and request id, then the signature over that very text.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from gatekeeper.siwe import SiweMessage, format_siwe, parse_siwe
from tests.test_wallet_support import (
    KEY_ALICE,
    KEY_BOB,
    RPC_URL,
    VERIFY,
    address_of,
    create,
    rpc_node,
    sign,
    verify,
    wallet_env,  # noqa: F401 (autouse fixture)
)

ALICE = address_of(KEY_ALICE)


async def siwe_challenge(client, **extra) -> tuple[dict, SiweMessage]:
    body = await create(client, format="siwe", domain="tattlehash.test", **extra)
    return body, parse_siwe(body["message"])


async def send(client, challenge_id: str, text: str, key: str = KEY_ALICE, signed: str | None = None):
    """Verify with `text` sent back, signed (by default) over that same text."""
    payload = {"challenge_id": challenge_id, "signature": sign(signed or text, key), "message": text}
    return await client.post(VERIFY, json=payload)


def field_error(response) -> str:
    assert (response.status, response.error_code) == (400, "E9004"), response.text
    (entry,) = response.json()["error"]["details"]["fields"]
    assert entry["field"] == "message"
    return entry["message"]


async def status_of(services, challenge_id: str) -> str:
    sql = "SELECT status FROM wallet_challenges WHERE id = ?"
    return await services.db.prepare(sql).bind(challenge_id).first("status")


async def test_the_issued_message_sent_back_verifies(client):
    body, _ = await siwe_challenge(client)
    response = await send(client, body["challenge_id"], body["message"])
    assert response.status == 200, response.text


async def test_an_apps_own_message_on_the_challenges_nonce_verifies(client, services):
    body, issued = await siwe_challenge(client)
    own = replace(
        issued,
        statement="Welcome back to the partner app",
        uri="https://tattlehash.test/login?next=%2Fhome",
        issued_at="2026-11-24T11:59:58Z",
        expiration_time="2026-11-24T12:05:00-01:00",
        request_id=None,
        resources=("ipfs://bafybeiemxf5abjwjbikoz4mc3a3dla6ual3jsgpdr4cjr3oz3evfyavhwq/",),
    )
    response = await send(client, body["challenge_id"], format_siwe(own))
    assert response.status == 200, response.text
    assert await status_of(services, body["challenge_id"]) == "VERIFIED"


async def test_the_signature_must_be_over_the_text_sent_back(client, httpx_mock):
    httpx_mock.add_callback(rpc_node(code="0x"), url=RPC_URL)
    body, issued = await siwe_challenge(client)
    own = format_siwe(replace(issued, statement="Another statement"))
    response = await send(client, body["challenge_id"], own, signed=body["message"])
    assert response.error_code == "E1006"


async def test_an_expired_message_is_410_and_the_challenge_stays_usable(client, services):
    body, issued = await siwe_challenge(client)
    expired = format_siwe(replace(issued, expiration_time="2026-11-24T12:00:00.000Z"))

    response = await send(client, body["challenge_id"], expired)

    assert (response.status, response.error_code) == (410, "E1004"), response.text
    assert response.json()["error"]["details"] == {"expired_at": "2026-11-24T12:00:00.000Z"}
    assert await status_of(services, body["challenge_id"]) == "PENDING"
    assert (await send(client, body["challenge_id"], body["message"])).status == 200


async def test_a_message_not_yet_valid_is_refused(client, services):
    body, issued = await siwe_challenge(client)
    early = format_siwe(replace(issued, not_before="2026-11-24T12:00:00.001Z"))
    assert "not valid before" in field_error(await send(client, body["challenge_id"], early))
    services.clock.advance(0.001)
    assert (await send(client, body["challenge_id"], early)).status == 200


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"domain": "localhost"}, "another domain"),  # allowed, but not the domain it was issued for
        ({"domain": "tattlehash.test:443"}, "another domain"),
        ({"domain": "alice@tattlehash.test"}, "another domain"),  # user-info: refused on purpose
        ({"nonce": "0123456789abcdef0123456789abcdef"}, "nonce"),
        ({"address": address_of(KEY_BOB)}, "address"),
        ({"chain_id": 8453}, "Chain ID"),
        ({"request_id": "4d6f7b0e-8a8c-4c59-a3a5-9b1f0f4b2e11"}, "Request ID"),
        ({"scheme": "http"}, "scheme"),
        ({"uri": "javascript:alert(1)"}, "URI"),
        ({"uri": "http://tattlehash.test/login"}, "URI"),
    ],
    ids=["other-domain", "other-port", "userinfo", "nonce", "address", "chain", "request-id", "http", "js", "http-uri"],
)
async def test_a_message_not_bound_to_the_challenge_is_refused(client, services, changes, reason):
    body, issued = await siwe_challenge(client)
    response = await send(client, body["challenge_id"], format_siwe(replace(issued, **changes)))
    assert reason in field_error(response)
    assert await status_of(services, body["challenge_id"]) == "PENDING"


async def test_the_domain_binding_is_checked_on_verify_without_a_message(client, env_vars):
    """The domain was allowed when the challenge was made; removed from SIWE_ALLOWED_DOMAINS since, it is not."""
    body, _ = await siwe_challenge(client)
    env_vars["SIWE_ALLOWED_DOMAINS"] = "app.partner.example"
    response = await verify(client, body["challenge_id"], sign(body["message"], KEY_ALICE))
    assert "not an allowed sign-in domain" in field_error(response)


@pytest.mark.parametrize(
    "mangle",
    [
        lambda text: text + "\n",
        lambda text: text.replace("\n", "\r\n"),
        lambda text: text.replace("Version: 1", "Version: 2"),
        lambda text: text.replace(ALICE, ALICE.lower()),
        lambda text: "plain text",
        lambda text: "",
    ],
    ids=["trailing-lf", "crlf", "version", "not-eip55", "plain", "empty"],
)
async def test_a_message_that_is_not_eip_4361_is_refused(client, mangle):
    body, _ = await siwe_challenge(client)
    field_error(await send(client, body["challenge_id"], mangle(body["message"])))


async def test_a_message_over_the_limit_is_a_validation_error(client):
    body, _ = await siwe_challenge(client)
    response = await client.post(
        VERIFY, json={"challenge_id": body["challenge_id"], "signature": "0x00", "message": "x" * 8193}
    )
    assert response.error_code == "E9004"


async def test_a_plain_challenge_takes_back_only_its_own_text(client):
    body = await create(client)
    other = await send(client, body["challenge_id"], body["message"] + " ")
    assert "exactly" in field_error(other)
    assert (await send(client, body["challenge_id"], body["message"])).status == 200


async def test_an_ipv6_loopback_domain_can_be_issued_and_verified(client, env_vars):
    env_vars["SIWE_ALLOWED_DOMAINS"] = "[::1]"
    body = await create(
        client, format="siwe", domain="[0:0:0:0:0:0:0:1]:8787", uri="http://[::1]:8787/login", chain_id="eip155:1"
    )
    issued = parse_siwe(body["message"])
    assert (issued.domain, issued.uri) == ("[::1]:8787", "http://[::1]:8787/login")
    own = format_siwe(replace(issued, scheme="http", domain="[::1]:8787", request_id=None))
    assert (await send(client, body["challenge_id"], own)).status == 200
