"""The pages' shared shell: one stylesheet and one script, both allowed by hash in a strict CSP, no external assets."""

from __future__ import annotations

import base64
import hashlib
import html
import json
from functools import lru_cache
from typing import Any

from core.http import Response
from pages.script import WALLET_SCRIPT

escape = html.escape

STYLE = """
:root{color-scheme:light;font-size:16px}
*{box-sizing:border-box}
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;background:#f3f4f6;color:#111827;line-height:1.5}
main{max-width:720px;margin:0 auto;padding:1rem;background:#fff;min-height:100vh;overflow-wrap:anywhere}
@media (min-width:760px){main{margin:2rem auto;border-radius:12px;padding:2rem;min-height:0;box-shadow:0 1px 3px #0002}}
h1{font-size:1.5rem;margin:.25rem 0 .5rem;overflow-wrap:anywhere}
h2{font-size:1.15rem;margin:1.5rem 0 .5rem}
p{margin:.5rem 0}
.eyebrow{color:#4b5563;margin:0;font-size:.9rem}
.mono,code,pre{font-family:ui-monospace,SFMono-Regular,Menlo,monospace;overflow-wrap:anywhere;word-break:break-word}
dl{display:grid;grid-template-columns:minmax(7rem,auto) 1fr;gap:.35rem .75rem;margin:.5rem 0}
dt{color:#374151;font-weight:600}
dd{margin:0;overflow-wrap:anywhere}
@media (max-width:420px){dl{grid-template-columns:1fr}dd{margin-bottom:.4rem}}
.card{border:1px solid #d1d5db;border-radius:8px;padding:.75rem 1rem;margin:.75rem 0}
ul{padding-left:1.25rem;margin:.25rem 0}
pre{white-space:pre-wrap;background:#f9fafb;border:1px solid #d1d5db;border-radius:8px;padding:.75rem;font-size:.85rem;margin:.5rem 0}
label{display:block;font-weight:600;margin:.75rem 0 .25rem}
select{font:inherit;padding:.5rem;min-height:44px;width:100%;max-width:28rem;border:1px solid #6b7280;border-radius:6px;background:#fff;color:#111827}
.actions{display:flex;flex-wrap:wrap;gap:.75rem;margin:1rem 0}
button{font:inherit;font-weight:600;min-height:44px;padding:.6rem 1.1rem;border-radius:8px;border:2px solid #1d4ed8;background:#1d4ed8;color:#fff;cursor:pointer}
button.secondary{background:#fff;color:#1d4ed8}
button:disabled{opacity:.55;cursor:not-allowed}
:focus-visible{outline:3px solid #f59e0b;outline-offset:2px}
a{color:#1d4ed8}
#status{border-radius:8px;padding:.75rem 1rem;margin:1rem 0;background:#eff6ff;border:1px solid #bfdbfe}
#status:empty{display:none}
#status.error{background:#fef2f2;border-color:#fca5a5;color:#7f1d1d}
#status.ok{background:#ecfdf5;border-color:#6ee7b7;color:#064e3b}
.muted{color:#4b5563}
.terms{white-space:pre-wrap;overflow-wrap:anywhere}
.badge{display:inline-block;font-size:.8rem;font-weight:700;padding:.05rem .5rem;border-radius:999px;background:#e5e7eb}
"""


def _source_hash(source: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(source.encode("utf-8")).digest()).decode() + "'"


@lru_cache(maxsize=2)
def content_security_policy(with_script: bool) -> str:
    """Nothing but this stylesheet and (when the page has one) this script, by hash; calls only to this origin."""
    script = _source_hash(WALLET_SCRIPT) if with_script else "'none'"
    return "; ".join(
        (
            "default-src 'none'",
            f"script-src {script}",
            f"style-src {_source_hash(STYLE)}",
            "connect-src 'self'" if with_script else "connect-src 'none'",
            "img-src 'self' data:",
            "base-uri 'none'",
            "form-action 'none'",
            "frame-ancestors 'none'",
        )
    )


def data_block(element_id: str, data: Any) -> str:
    """JSON for the script in a non-executable block; `<`, `>` and `&` escaped so no value can close the tag."""
    text = json.dumps(data, separators=(",", ":"), ensure_ascii=False)
    text = text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return f'<script type="application/json" id="{escape(element_id)}">{text}</script>'


def document(title: str, body: str, *, config: dict[str, Any] | None = None) -> str:
    """A whole page: the shared stylesheet, `body` inside <main>, and with `config` the wallet script."""
    script = ""
    if config is not None:
        script = data_block("page-config", config) + f"<script>{WALLET_SCRIPT}</script>"
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<meta name="referrer" content="no-referrer">'
        f"<title>{escape(title)}</title><style>{STYLE}</style></head>"
        f"<body><main>{body}</main>{script}</body></html>"
    )


def page_response(text: str, status: int = 200, *, with_script: bool = True) -> Response:
    """An HTML answer with the strict CSP; never cached (the invitation's URL carries its token)."""
    return Response.html(
        text,
        status,
        headers={
            "content-security-policy": content_security_policy(with_script),
            "cache-control": "no-store",
            "referrer-policy": "no-referrer",
            "x-frame-options": "DENY",
        },
    )


def error_page(status: int, heading: str, text: str) -> Response:
    """A plain 4xx page: a heading and one paragraph in plain words, no script."""
    body = f'<p class="eyebrow">TattleHash</p><h1>{escape(heading)}</h1><p>{escape(text)}</p>'
    return page_response(document(heading, body), status, with_script=False)


def definition_list(rows: list[tuple[str, str]]) -> str:
    """<dl> of (label, text) rows, both escaped; rows with an empty text are left out."""
    items = "".join(f"<dt>{escape(label)}</dt><dd>{escape(text)}</dd>" for label, text in rows if text)
    return f"<dl>{items}</dl>" if items else ""


def wallet_controls(*, connect_label: str, decision: bool, message: str | None = None) -> str:
    """The controls the wallet script drives: pick a wallet, connect, read the message, sign (and decide).

    A `message` known already is shown at once; otherwise the script shows the one it asks for on connecting.
    """
    decision_html = ""
    if decision:
        decision_html = (
            '<section id="decision" hidden aria-labelledby="decision-heading">'
            '<h2 id="decision-heading">3. Your answer</h2>'
            "<p>Your wallet is verified. Accept the terms above, or decline the invitation.</p>"
            '<div class="actions"><button type="button" id="accept">Accept the challenge</button>'
            '<button type="button" id="decline" class="secondary">Decline</button></div></section>'
        )
    return (
        '<section aria-labelledby="connect-heading"><h2 id="connect-heading">1. Connect your wallet</h2>'
        '<div id="picker" hidden><label for="wallet-picker">Wallet to use</label>'
        '<select id="wallet-picker"></select></div>'
        '<p id="no-wallet" class="muted">Looking for a browser wallet…</p>'
        f'<div class="actions"><button type="button" id="connect">{escape(connect_label)}</button></div>'
        '<p id="account" class="mono" aria-live="polite"></p></section>'
        f'<section id="signing"{"" if message is not None else " hidden"} aria-labelledby="signing-heading">'
        '<h2 id="signing-heading">2. Sign this exact message</h2>'
        "<p>Your wallet will ask you to sign the text below. Signing is free, sends no transaction and moves no"
        " funds. Check it matches what your wallet shows.</p>"
        f'<pre id="message" tabindex="0" aria-label="The message to sign">{escape(message or "")}</pre>'
        '<div class="actions"><button type="button" id="sign">Sign the message</button></div></section>'
        f"{decision_html}"
        '<div id="status" role="status" aria-live="polite"></div>'
    )
