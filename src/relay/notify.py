"""Email (Resend) and SMS (Twilio) notifications: who gets what, templates with escaped user text, leased sends."""

from __future__ import annotations

import html
import json
import re
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx

from accounts.store import Contact
from challenges import invites
from challenges.store import Parties
from core import flags
from core.clock import format_time
from core.context import Services
from core.ids import new_id
from relay import store, transport
from relay.queues import drain_in_order
from relay.store import DueNotification

RESEND_URL = "https://api.resend.com/emails"
TWILIO_URL = "https://api.twilio.com/2010-04-01/Accounts/{sid}/Messages.json"
RETRY_DELAYS: tuple[int, ...] = (60, 300, 1800, 7200)
MAX_ATTEMPTS = len(RETRY_DELAYS) + 1
DEFAULT_TIMEOUT_SECONDS = 10.0
MAX_RESPONSE_BYTES = 16384
MAX_REASON_CHARS = 200
SEND_LIMIT = 50
SEND_CONCURRENCY = 10
LEASE_MARGIN_SECONDS = 30
BRAND = "TattleHash"

_E164 = re.compile(r"^\+[1-9]\d{6,14}$")
_ACCOUNT_SID = re.compile(r"^[A-Za-z0-9]{2,64}$")
_PROVIDER_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")

CREATOR, COUNTERPARTY = "CREATOR", "COUNTERPARTY"
BOTH = (CREATOR, COUNTERPARTY)
# SPEC §11: who is told about what. Event types not listed here send no email or SMS.
AUDIENCE: dict[str, tuple[str, ...]] = {
    "challenge.invitation_sent": (COUNTERPARTY,),
    "challenge.accepted": (CREATOR,),
    "challenge.intent_locked": BOTH,
    "challenge.completed": BOTH,
    "challenge.cancelled": BOTH,
    "challenge.expired": BOTH,
    "challenge.disputed": BOTH,
    # The other party must see a proposal before its dispute window can settle money; the proposer gets a copy.
    "challenge.outcome_proposed": BOTH,
}


def recipients(event_type: str, challenge: Parties | None) -> list[str]:
    """User ids to notify about this event, each once."""
    if challenge is None:
        return []
    users = {CREATOR: challenge.creator_user_id, COUNTERPARTY: challenge.counterparty_user_id}
    found: list[str] = []
    for role in AUDIENCE.get(event_type, ()):
        user = users[role]
        if user and user not in found:
            found.append(user)
    return found


def channels(contact: Contact) -> list[str]:
    """The channels a user can be reached on: email if they gave one, SMS if they gave a phone."""
    found = []
    if contact.email:
        found.append("EMAIL")
    if contact.phone:
        found.append("SMS")
    return found


# ---- templates


@dataclass(frozen=True)
class Template:
    subject: str
    headline: str
    sms: str


TEMPLATES: dict[str, Template] = {
    "challenge.invitation_sent": Template(
        "You're invited: {title}",
        "You have been invited to the challenge \u201c{title}\u201d.",
        'You\'re invited to the challenge "{title}".',
    ),
    "challenge.accepted": Template(
        "Challenge accepted: {title}",
        "Your challenge \u201c{title}\u201d was accepted.",
        'Your challenge "{title}" was accepted.',
    ),
    "challenge.intent_locked": Template(
        "Intent locked: {title}",
        "Intent is now locked for the challenge \u201c{title}\u201d.",
        'Intent locked for "{title}".',
    ),
    "challenge.completed": Template(
        "Challenge completed: {title}",
        "The challenge \u201c{title}\u201d is complete.",
        'The challenge "{title}" is complete.',
    ),
    "challenge.cancelled": Template(
        "Challenge cancelled: {title}",
        "The challenge \u201c{title}\u201d was cancelled.",
        'The challenge "{title}" was cancelled.',
    ),
    "challenge.expired": Template(
        "Challenge expired: {title}",
        "The challenge \u201c{title}\u201d expired.",
        'The challenge "{title}" expired.',
    ),
    "challenge.disputed": Template(
        "Challenge disputed: {title}",
        "The challenge \u201c{title}\u201d is disputed.",
        'The challenge "{title}" is disputed.',
    ),
    "challenge.outcome_proposed": Template(
        "Outcome proposed: {title}",
        "An outcome was proposed for the challenge \u201c{title}\u201d. A party that does not agree can dispute it.",
        'Outcome proposed for "{title}". Not agreed? Dispute it.',
    ),
}
# The proof page is public from intent lock on, so only these messages link to it.
_PROOF_LINKED = frozenset({"challenge.intent_locked", "challenge.completed", "challenge.disputed"})
_DETAILS = (
    ("outcome", "Outcome"),
    ("accept_deadline", "Respond by"),
    ("dispute_window_ends_at", "Dispute by"),
    ("reason", "Reason"),
)
_LINE_BREAKS = re.compile(r"[\x00-\x1f\x7f]+")


@dataclass(frozen=True)
class Message:
    subject: str
    text: str
    html: str
    sms: str


def _one_line(value: str, limit: int) -> str:
    text = " ".join(_LINE_BREAKS.sub(" ", value).split())
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


def render(
    template_name: str, title: str, payload: dict[str, Any], challenge_id: str, base_url: str, invite_link: str = ""
) -> Message:
    """Subject, plain text, HTML (every user-supplied value escaped) and SMS text for one notification.

    `invite_link` (challenges.invites.link_for) goes into the invitation's email and SMS, and nowhere else.
    """
    invite = invite_link if template_name == "challenge.invitation_sent" else ""
    template = TEMPLATES[template_name]
    title = _one_line(title or "Untitled", 120)
    details = [(label, _one_line(str(payload[key]), 120)) for key, label in _DETAILS if payload.get(key)]
    link = f"{base_url.rstrip('/')}/proof/{challenge_id}" if base_url and template_name in _PROOF_LINKED else ""
    headline = template.headline.format(title=title)
    text_lines = [headline, "", *(f"{label}: {value}" for label, value in details)]
    if link:
        text_lines += ["", f"Proof: {link}"]
    if invite:
        text_lines += ["", f"Review and answer the invitation: {invite}"]
    text_lines += ["", f"Challenge id: {challenge_id}", f"You receive this because you are a party to it on {BRAND}."]
    escaped_headline = template.headline.format(title=html.escape(title, quote=True))
    items = "".join(f"<li>{html.escape(label)}: {html.escape(value, quote=True)}</li>" for label, value in details)
    body = [
        "<!doctype html>",
        '<html><body style="font-family:system-ui,sans-serif;line-height:1.5">',
        f"<p>{escaped_headline}</p>",
    ]
    if items:
        body.append(f"<ul>{items}</ul>")
    if link:
        body.append(f'<p><a href="{html.escape(link, quote=True)}">View the proof</a></p>')
    if invite:
        body.append(f'<p><a href="{html.escape(invite, quote=True)}">Review and answer the invitation</a></p>')
    body.append(
        f'<p style="color:#666">Challenge id: {html.escape(challenge_id)}. You receive this because you are a party'
        f" to it on {BRAND}.</p></body></html>"
    )
    sms = f"{BRAND}: " + template.sms.format(title=_one_line(title, 40)) + (f" {invite}" if invite else "")
    return Message(
        subject=_one_line(template.subject.format(title=title), 150),
        text="\n".join(text_lines),
        html="".join(body),
        sms=sms,
    )


def contact_code_message(code: str, address_kind: str, minutes: int) -> Message:
    """The one-time code that proves an email address or phone number; it carries no user-supplied text."""
    what = f"this {address_kind} for your {BRAND} account"
    line = f"Your {BRAND} verification code is {code}. It confirms {what} and expires in {minutes} minutes."
    ignore = "If you did not ask for it, ignore this message: nothing changes without the code."
    return Message(
        subject=f"{BRAND} verification code",
        text=f"{line}\n\n{ignore}",
        html=(
            '<!doctype html><html><body style="font-family:system-ui,sans-serif;line-height:1.5">'
            f"<p>Your {BRAND} verification code is <strong>{html.escape(code)}</strong>.</p>"
            f"<p>It confirms {html.escape(what)} and expires in {minutes} minutes.</p>"
            f'<p style="color:#666">{html.escape(ignore)}</p></body></html>'
        ),
        sms=f"{BRAND} code: {code} (expires in {minutes} min). Ignore it if you did not ask for it.",
    )


# ---- providers


@dataclass
class Outcome:
    """What one notification attempt ends as: SENT, SKIPPED, FAILED, or PENDING for a retry."""

    status: str
    error: str | None = None
    provider_message_id: str | None = None
    retry_after: float | None = None
    status_code: int | None = None


def missing_config(env: Any, channel: str) -> str | None:
    """The first provider variable that is missing or unusable for `channel` (its name, never its value)."""
    names = ("RESEND_API_KEY", "EMAIL_FROM") if channel == "EMAIL" else (
        "TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN", "TWILIO_FROM_NUMBER"
    )  # fmt: skip
    for name in names:
        if not env.get(name).strip():
            return name
    if channel == "SMS" and not _ACCOUNT_SID.match(env.get("TWILIO_ACCOUNT_SID").strip()):
        return "TWILIO_ACCOUNT_SID"
    return None


def _provider_reason(body: bytes) -> str:
    """The provider's own error message (both APIs answer JSON with `message`), trimmed; never raw bytes."""
    try:
        document = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return ""
    message = document.get("message") if isinstance(document, dict) else None
    return transport.clean_text(message, MAX_REASON_CHARS) if isinstance(message, str) else ""


def _provider_id(body: bytes, key: str) -> str | None:
    try:
        document = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return None
    value = document.get(key) if isinstance(document, dict) else None
    return value if isinstance(value, str) and _PROVIDER_ID.match(value) else None


def _timeout(services: Services) -> float:
    return transport.timeout_setting(services.env, "NOTIFY_TIMEOUT_SECONDS", DEFAULT_TIMEOUT_SECONDS)


async def _post(services: Services, url: str, id_key: str, **request: Any) -> Outcome:
    result = await transport.post_bounded(
        services.http, url, seconds=_timeout(services), max_bytes=MAX_RESPONSE_BYTES, **request
    )
    code = result.status_code
    if code is None:
        return Outcome("PENDING", result.error)
    if 200 <= code < 300:
        return Outcome("SENT", provider_message_id=_provider_id(result.body, id_key), status_code=code)
    reason = _provider_reason(result.body)
    error = f"HTTP {code}" + (f": {reason}" if reason else "")
    if code >= 500 or code in {408, 429}:
        retry_after = transport.retry_after_seconds(result.headers.get("retry-after"), services.now())
        return Outcome("PENDING", error, retry_after=retry_after, status_code=code)
    return Outcome("FAILED", error, status_code=code)


async def send_email(services: Services, notification_id: str, to: str, message: Message) -> Outcome:
    """POST https://api.resend.com/emails; the notification id is the Idempotency-Key, so a retry never doubles."""
    env = services.env
    payload = {
        "from": env.get("EMAIL_FROM").strip(),
        "to": [to],
        "subject": message.subject,
        "html": message.html,
        "text": message.text,
    }
    headers = {
        "authorization": f"Bearer {env.get('RESEND_API_KEY').strip()}",
        "content-type": "application/json",
        "idempotency-key": f"notification/{notification_id}",
    }
    body = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    return await _post(services, RESEND_URL, "id", content=body, headers=headers)


async def send_sms(services: Services, to: str, message: Message) -> Outcome:
    """POST Twilio's Messages.json, form-encoded To/From/Body, HTTP Basic auth with the account SID and token."""
    env = services.env
    sid = env.get("TWILIO_ACCOUNT_SID").strip()
    form = {"To": to, "From": env.get("TWILIO_FROM_NUMBER").strip(), "Body": message.sms}
    return await _post(
        services,
        TWILIO_URL.format(sid=sid),
        "sid",
        data=form,
        auth=httpx.BasicAuth(sid, env.get("TWILIO_AUTH_TOKEN").strip()),
    )


# ---- the send loop: claim with a lease, send, record


async def _attempt(services: Services, row: DueNotification) -> Outcome:
    env = services.env
    if not env.flag(flags.NOTIFICATIONS, row.user_id):
        return Outcome("SKIPPED", "notifications are turned off")
    channel = row.channel
    missing = missing_config(env, channel)
    if missing is not None:
        return Outcome("SKIPPED", f"provider not configured ({missing})")
    template = row.template
    if template not in TEMPLATES:
        return Outcome("SKIPPED", "no template for this event")
    try:
        payload = json.loads(row.payload)
    except ValueError:
        return Outcome("FAILED", "event payload is not valid JSON")
    invite = ""
    if template == "challenge.invitation_sent" and row.challenge_id:
        invite = await invites.link_for(services.db, env, row.challenge_id, services.now()) or ""
    message = render(template, row.title or "", payload, row.challenge_id or "", env.get("PUBLIC_BASE_URL"), invite)
    if channel == "EMAIL":
        if not row.email:
            return Outcome("SKIPPED", "no email address on file")
        return await send_email(services, row.id, row.email, message)
    phone = (row.phone or "").strip()
    if not phone:
        return Outcome("SKIPPED", "no phone number on file")
    if not _E164.match(phone):
        return Outcome("FAILED", "phone number is not in E.164 format")
    return await send_sms(services, phone, message)


@dataclass
class SendReport:
    sent: int = 0
    skipped: int = 0
    failed: int = 0
    retrying: int = 0
    not_claimed: int = 0
    errors: int = 0

    def as_dict(self) -> dict[str, int]:
        return dict(vars(self))


async def send_one(services: Services, row: DueNotification, owner: str, report: SendReport) -> str | None:
    """One attempt of one due notification, if this run wins the claim; its new status, else None."""
    db = services.db
    now = services.now()
    stamp = format_time(now)
    lease_until = format_time(now + timedelta(seconds=_timeout(services) + LEASE_MARGIN_SECONDS))
    claimed = await store.claim_notification_statement(db, row, owner, stamp, lease_until).run()
    if claimed.changes != 1:
        report.not_claimed += 1
        return None
    number = row.attempt_count + 1
    outcome = await _attempt(services, row)
    finished = services.now()
    next_attempt_at = None
    if outcome.status == "PENDING":
        delay = transport.backoff(number, outcome.retry_after, RETRY_DELAYS)
        if delay is None:
            outcome.status = "FAILED"
        else:
            next_attempt_at = format_time(finished + timedelta(seconds=delay))
    error = transport.clean_text(outcome.error, MAX_REASON_CHARS + 40) if outcome.error else None
    result = await store.record_notification_statement(
        db,
        row.id,
        owner,
        status=outcome.status,
        attempt_count=number,
        next_attempt_at=next_attempt_at,
        provider_message_id=outcome.provider_message_id,
        error=error,
        stamp=format_time(finished),
    ).run()
    if result.changes != 1:
        report.not_claimed += 1
        return None
    counter = {"SENT": "sent", "SKIPPED": "skipped", "FAILED": "failed", "PENDING": "retrying"}[outcome.status]
    setattr(report, counter, getattr(report, counter) + 1)
    services.logger.info(
        "notification_attempt",
        notification_id=row.id,
        channel=row.channel,
        attempt=number,
        status_code=outcome.status_code,
        outcome=outcome.status,
    )
    return outcome.status


async def send_due(
    services: Services, *, limit: int = SEND_LIMIT, concurrency: int = SEND_CONCURRENCY
) -> dict[str, int]:
    """Attempt the due notifications (bounded): recipients in parallel, each one's messages in event order.

    When a provider call has to be retried, that recipient's remaining messages wait for a later run.
    """
    rows = await store.due_notifications(services.db, format_time(services.now()), limit)
    report = SendReport()
    if not rows:
        return report.as_dict()
    queues: dict[tuple[str, str], list[DueNotification]] = {}
    for row in rows:
        queues.setdefault((row.user_id, row.channel), []).append(row)
    owner = new_id()

    def on_error(row: DueNotification, error: Exception) -> None:
        report.errors += 1
        services.logger.error("notification_error", notification_id=row.id, error_type=type(error).__name__)

    await drain_in_order(
        queues.values(),
        concurrency=concurrency,
        send=lambda row: send_one(services, row, owner, report),
        keep_going=lambda status: status != "PENDING",
        on_error=on_error,
    )
    return report.as_dict()
