"""The public proof: 404 before intent lock, HTML with an inline QR code, JSON whose hashes anyone can recompute."""

from __future__ import annotations

import hashlib

import rfc8785


async def _completed_solo(client, make_user, title="Proof <script>alert(1)</script>"):
    _, token = await make_user()
    challenge = (await client.post("/challenges", json={"mode": "SOLO", "title": title}, token=token)).json()
    return challenge, token


async def test_proof_is_404_until_intent_lock(client, make_user):
    challenge, token = await _completed_solo(client, make_user)
    assert (await client.get(f"/proof/{challenge['id']}")).error_code == "E3010"
    assert (await client.get("/proof/2b1f3c1e-1111-4111-8111-111111111111")).status == 404
    await client.post(f"/challenges/{challenge['id']}/confirm", token=token)
    assert (await client.get(f"/proof/{challenge['id']}")).status == 200


async def test_proof_json_hashes_recompute(client, make_user):
    challenge, token = await _completed_solo(client, make_user)
    await client.post(f"/challenges/{challenge['id']}/confirm", token=token)
    document = (await client.get(f"/proof/{challenge['id']}", headers={"accept": "application/json"})).json()
    assert document["proof_url"] == f"https://tattlehash.test/proof/{challenge['id']}"
    for name in ("initiator", "final"):
        entry = document["hashes"][name]
        # Recompute from the published input with an independent JCS implementation and sha256.
        assert hashlib.sha256(rfc8785.dumps(entry["input"])).hexdigest() == entry["hash"]
        assert rfc8785.dumps(entry["input"]).decode() == entry["canonical_json"]
    final_input = document["hashes"]["final"]["input"]
    assert final_input["initiator_hash"] == document["hashes"]["initiator"]["hash"]
    stored = (await client.get(f"/challenges/{challenge['id']}", token=token)).json()
    assert stored["final_hash"] == document["hashes"]["final"]["hash"]
    assert stored["initiator_hash"] == document["hashes"]["initiator"]["hash"]


async def test_proof_html_is_self_contained_and_escaped(client, make_user):
    challenge, token = await _completed_solo(client, make_user)
    await client.post(f"/challenges/{challenge['id']}/confirm", token=token)
    response = await client.get(f"/proof/{challenge['id']}", headers={"accept": "text/html"})
    page = response.text
    assert response.headers["content-type"].startswith("text/html")
    assert "<svg" in page and "qrline" in page
    assert "<script>" not in page and "&lt;script&gt;" in page
    for external in ("http://", "src=", "<link", "@import"):
        assert external not in page.replace(f"https://tattlehash.test/proof/{challenge['id']}", ""), external
    assert "default-src 'none'" in response.headers["content-security-policy"]
