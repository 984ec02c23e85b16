"""The public proof of a challenge (a self-contained HTML page with a QR code, or JSON with every hash input)
and, for its parties only, the openings of the private fields its hashes commit to."""

from __future__ import annotations

import html
from typing import Any

from pydantic import Field

from challenges import attestation, modes, store
from challenges.store import Aggregate
from core.context import RequestContext
from core.errors import ApiError
from core.http import Request, Response
from core.schemas import OutModel

_HASH_KINDS = (("INITIATOR", "initiator", "I"), ("COUNTER", "counter", "C"), ("FINAL", "final", "FINAL"))


def proof_url(ctx: RequestContext, challenge_id: str) -> str:
    base = ctx.env.get("PUBLIC_BASE_URL", "").rstrip("/")
    return f"{base}/proof/{challenge_id}"


def proof_document(ctx: RequestContext, aggregate: Aggregate) -> dict[str, Any]:
    """Everything a verifier needs: each hash with the exact canonical JSON it was computed from.

    Those inputs hold no private field (see challenges.attestation); an input from before that rule
    (version v1, with the description and user ids in clear) is withheld: its hash is still shown, and
    the parties can fetch the input from GET /challenges/{id}/openings.
    """
    challenge = aggregate.challenge
    by_kind = aggregate.attestations
    hashes: dict[str, Any] = {}
    for kind, name, _ in _HASH_KINDS:
        row = by_kind.get(kind)
        if row is None:
            hashes[name] = None
            continue
        withheld = row.is_legacy
        hashes[name] = {
            "hash": row.hash,
            "canonical_json": None if withheld else row.canonical_input,
            "input": None if withheld else row.input,
            "created_at": row.created_at,
        }
        if withheld:
            hashes[name]["withheld"] = "this input predates private commitments: only the parties may see it"
    requirements = store.requirements_view(aggregate)
    parties = {
        side: {
            "wallet_address": data["wallet_address"],
            "network": data["network"],
            "checks": [
                {
                    "asset_type": check["asset_type"],
                    "token_address": check["token_address"],
                    "currency_symbol": check["currency_symbol"],
                    "min_balance": check["min_balance"],
                    "status": check["status"],
                }
                for check in data["funds_checks"]
            ],
        }
        for side, data in requirements.items()
    }
    return {
        "id": challenge.id,
        "title": challenge.title,
        "mode": challenge.mode,
        "status": challenge.status,
        "outcome": challenge.outcome,
        "created_at": challenge.created_at,
        "intent_locked_at": challenge.intent_locked_at,
        "completed_at": challenge.completed_at,
        "proof_url": proof_url(ctx, challenge.id),
        "parties": parties,
        "hashes": hashes,
        "algorithm": "sha256 over RFC 8785 (JCS) canonical JSON; FINAL commits to I, C and the outcome",
        "commitment_algorithm": attestation.COMMITMENT_ALGORITHM,
    }


def _qr_svg(url: str) -> str:
    import segno

    return segno.make(url, error="m").svg_inline(scale=4, dark="#111827", light="#ffffff")


def _checks_html(party: dict[str, Any]) -> str:
    items = []
    for check in party["checks"]:
        label = check["currency_symbol"] or ("native" if check["asset_type"] == "NATIVE" else "token")
        status = check["status"]
        items.append(
            f'<li class="check {html.escape(status.lower())}"><span class="badge">{html.escape(status)}</span> '
            f"{html.escape(check['asset_type'])} {html.escape(label)} ≥ {html.escape(check['min_balance'])}</li>"
        )
    return "<ul>" + "".join(items) + "</ul>" if items else '<p class="muted">No funds checks</p>'


def render_html(document: dict[str, Any]) -> str:
    escape = html.escape
    rows = "".join(
        f"<tr><th>{escape(label)}</th><td>{escape(str(document[key] or '—'))}</td></tr>"
        for label, key in (
            ("Mode", "mode"),
            ("Status", "status"),
            ("Outcome", "outcome"),
            ("Created", "created_at"),
            ("Intent locked", "intent_locked_at"),
            ("Completed", "completed_at"),
        )
    )
    parties = "".join(
        f'<section class="party"><h3>{escape(side.title())}</h3>'
        f'<p class="mono">{escape(party["wallet_address"])} · {escape(party["network"])}</p>{_checks_html(party)}</section>'
        for side, party in document["parties"].items()
    )
    hashes = "".join(
        f'<tr><th>{escape(symbol)}</th><td class="mono" id="hash-{name}">'
        f"{escape(document['hashes'][name]['hash']) if document['hashes'][name] else '—'}</td></tr>"
        for _, name, symbol in _HASH_KINDS
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Proof · {escape(document["title"])}</title>
<style>
body{{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;background:#f3f4f6;color:#111827}}
main{{max-width:760px;margin:2rem auto;background:#fff;border-radius:12px;padding:2rem;box-shadow:0 1px 3px #0002}}
h1{{margin:0 0 .25rem;font-size:1.6rem}} .muted{{color:#6b7280}} .mono{{font-family:ui-monospace,monospace;word-break:break-all}}
table{{border-collapse:collapse;width:100%;margin:1rem 0}} th{{text-align:left;padding:.35rem .75rem .35rem 0;color:#374151;width:9rem;vertical-align:top}}
td{{padding:.35rem 0}} .top{{display:flex;gap:1.5rem;justify-content:space-between;align-items:flex-start}}
.party{{border:1px solid #e5e7eb;border-radius:8px;padding:.75rem 1rem;margin:.75rem 0}} ul{{padding-left:1rem}}
.badge{{display:inline-block;font-size:.75rem;font-weight:700;padding:.1rem .45rem;border-radius:999px;background:#e5e7eb}}
.passed .badge{{background:#d1fae5;color:#065f46}} .failed .badge{{background:#fee2e2;color:#991b1b}}
.status{{font-weight:700}}
</style></head>
<body><main>
<div class="top"><div><p class="muted">TattleHash proof</p><h1>{escape(document["title"])}</h1>
<p class="status">{escape(document["mode"])} · {escape(document["status"])}</p></div>
<figure aria-label="QR code of this proof's address">{_qr_svg(document["proof_url"])}</figure></div>
<table>{rows}</table>
<h2>Parties</h2>{parties or '<p class="muted">No gatekeeper requirements</p>'}
<h2>Hashes</h2><table>{hashes}</table>
<p class="muted">Each hash is sha256 over RFC 8785 canonical JSON. Fetch this URL with
<code>Accept: application/json</code> for the exact inputs and recompute them yourself. Private terms
(the description, who the parties are) enter the hashes only as salted commitments that the parties
can open.</p>
<p class="mono muted">{escape(document["proof_url"])}</p>
</main></body></html>"""


async def get_proof(request: Request, ctx: RequestContext) -> Response:
    """Public once the challenge reached INTENT_LOCKED; before that (or unknown) it does not exist: 404."""
    aggregate = await store.load(ctx.db, request.path_params["challenge_id"])
    if aggregate is None:
        raise ApiError("E3010")
    challenge = aggregate.challenge
    if challenge.intent_locked_at is None or challenge.status == modes.DRAFT:
        raise ApiError("E3010")
    document = proof_document(ctx, aggregate)
    if request.wants_json():
        return Response.json(document, headers={"cache-control": "public, max-age=60"})
    return Response.html(
        render_html(document),
        headers={
            "cache-control": "public, max-age=60",
            "content-security-policy": "default-src 'none'; style-src 'unsafe-inline'; img-src data:",
        },
    )


# -- openings (parties only) ------------------------------------------------------------------------------


class OpeningOut(OutModel):
    value: Any = Field(description="The private value committed to (any JSON value; null when absent)")
    salt: str = Field(description="64 hex characters")
    commitment: str = Field(description='sha256 of the RFC 8785 canonical JSON of {"salt": salt, "value": value}')


class HashOpenings(OutModel):
    hash: str
    canonical_json: str = Field(description="The hash input, exactly as hashed (the proof publishes the same)")
    openings: dict[str, OpeningOut] = Field(description="Per entry of the input's commitments: its opening")


class ProofOpenings(OutModel):
    challenge_id: str
    algorithm: str
    initiator: HashOpenings | None
    counter: HashOpenings | None
    final: HashOpenings | None


async def get_openings(request: Request, ctx: RequestContext) -> Response:
    """The challenge's parties (and operators) get the value and salt behind each private commitment.

    Strangers get 404 E3010, as for the challenge itself. A party may hand an opening to whomever it
    wants to prove a field to: with the public proof, the opening is checkable by anyone.
    """
    aggregate = await store.load_visible(ctx.db, request.path_params["challenge_id"], ctx.principal)
    rows = aggregate.attestations
    hashes: dict[str, HashOpenings | None] = {}
    for kind, name, _ in _HASH_KINDS:
        row = rows.get(kind)
        hashes[name] = (
            None
            if row is None
            else HashOpenings(
                hash=row.hash,
                canonical_json=row.canonical_input,
                openings={
                    field: OpeningOut(value=opening.value, salt=opening.salt, commitment=opening.commitment)
                    for field, opening in row.openings.items()
                },
            )
        )
    out = ProofOpenings(
        challenge_id=aggregate.id,
        algorithm=attestation.COMMITMENT_ALGORITHM,
        initiator=hashes["initiator"],
        counter=hashes["counter"],
        final=hashes["final"],
    )
    # Private data: never cached by a shared cache.
    return Response.json(out.model_dump(), headers={"cache-control": "private, no-store"})
