"""The caller's own profile: read it, edit it (new contacts become pending claims), prove a pending contact."""

from __future__ import annotations

import hmac
import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from accounts import contacts, store
from accounts.contacts import Channel, Delivery, PendingClaim
from accounts.store import User
from core import flags
from core.auth import Caller, Principal, preloaded_or_read
from core.clock import format_time, parse_time
from core.config import Env
from core.context import Services
from core.errors import ApiError
from core.ids import new_id
from db.port import Database, QueryResult, Statement
from relay import notify

_PROVIDER_CHANNEL = {"email": "EMAIL", "phone": "SMS"}
_ADDRESS_KIND = {"email": "email address", "phone": "phone number"}


@dataclass(frozen=True)
class ProfileRecord:
    """A user's row, wallets, and pending contact claims, as read in one batch."""

    user: User
    wallets: list[str]
    pending: dict[str, PendingClaim] = field(default_factory=dict)


def read_statements(db: Database, caller: Caller) -> list[Statement]:
    """The profile's reads; GET /me runs them in the auth batch (see core.auth.Preload)."""
    return [
        store.user_statement(db, caller),
        store.wallets_statement(db, caller),
        store.claims_statement(db, caller),
    ]


def _record(results: list[QueryResult]) -> ProfileRecord:
    user_rows, wallet_rows, claim_rows = results
    user = store.user_from(user_rows)
    if user is None:
        raise ApiError("E9006", "The user behind these credentials no longer exists")
    return ProfileRecord(user, store.wallets_from(wallet_rows), store.claims_from(claim_rows))


async def read(db: Database, principal: Principal) -> ProfileRecord:
    """No round trip of its own when the reads rode in the auth batch; one otherwise."""
    return _record(await preloaded_or_read(db, principal, lambda caller: read_statements(db, caller)))


def _address_hashes(env: Env, changes: dict[str, Any]) -> dict[Channel, str]:
    return {ch: contacts.address_hash(env, ch, changes[ch]) for ch in contacts.CHANNELS if changes.get(ch) is not None}


def patch_reads(env: Env, db: Database, caller: Caller, now: datetime, changes: dict[str, Any]) -> list[Statement]:
    """PATCH /me's reads: the profile, and the send counts the caps need (this user's, each claimed address's)."""
    reads = [*read_statements(db, caller), store.user_sends_statement_for(db, caller, now)]
    return reads + [store.address_sends_statement(db, hashed, now) for hashed in _address_hashes(env, changes).values()]


def verify_reads(db: Database, caller: Caller) -> list[Statement]:
    """POST /me/verify's read: the caller's pending claims."""
    return [store.claims_statement(db, caller)]


def delivery_available(services: Services, user_id: str, channel: Channel) -> bool:
    """Codes go out only when email/SMS is on for this user and its provider is configured."""
    env = services.env
    return env.flag(flags.NOTIFICATIONS, user_id) and notify.missing_config(env, _PROVIDER_CHANNEL[channel]) is None


def _retry_after(oldest: str | None, window: timedelta, now: datetime) -> int:
    if not oldest:
        return 1
    return max(math.ceil((parse_time(oldest) + window - now).total_seconds()), 1)


def _limited(limit: int, window: timedelta, oldest: str | None, now: datetime, scope: str) -> ApiError:
    retry = _retry_after(oldest, window, now)
    return ApiError(
        "E9003",
        f"Too many verification codes {scope}; try again later",
        {"limit": limit, "period_seconds": int(window.total_seconds()), "retry_after_seconds": retry},
        headers={"retry-after": str(retry)},
    )


async def _send(services: Services, send_id: str, user_id: str, channel: Channel, value: str, code: str) -> Delivery:
    message = notify.contact_code_message(code, _ADDRESS_KIND[channel], int(contacts.CODE_TTL.total_seconds()) // 60)
    if channel == "email":
        outcome = await notify.send_email(services, send_id, value, message)
    else:
        outcome = await notify.send_sms(services, value, message)
    # Neither the code nor the address: the log says only that a code went out and how the provider answered.
    services.logger.info(
        "contact_code_sent", user_id=user_id, channel=channel, outcome=outcome.status, status_code=outcome.status_code
    )
    return "SENT" if outcome.status == "SENT" else "FAILED"


async def patch(services: Services, principal: Principal, changes: dict[str, Any]) -> ProfileRecord:
    """Apply a PATCH /me: display_name at once; a new email/phone becomes a pending claim and gets a code.

    The answer is the same whether or not another account holds the address: nothing here looks at other
    accounts' contacts (only verify does, after the code proved the caller holds the address).
    """
    db, env = services.db, services.env
    now = services.now()
    user_id = principal.user_id or ""
    requested: dict[Channel, str | None] = {ch: changes[ch] for ch in contacts.CHANNELS if ch in changes}
    hashes = _address_hashes(env, changes)

    # One read batch (the auth batch when it could carry them): the profile, and the send counts the caps need.
    results = await preloaded_or_read(db, principal, lambda caller: patch_reads(env, db, caller, now, changes))
    record = _record(results[:3])
    user_sends = results[3].results[0]
    address_sends = {ch: result.results[0] for ch, result in zip(hashes, results[4:], strict=True)}

    # A value equal to the verified one keeps it (and drops any pending claim); anything else is claimed.
    claims = {ch: value for ch, value in requested.items() if value is not None and value != record.user.contact(ch)}
    sending = [ch for ch in claims if delivery_available(services, user_id, ch)]
    if sending:
        if int(user_sends["sent"]) + len(sending) > contacts.USER_SENDS_PER_HOUR:
            raise _limited(contacts.USER_SENDS_PER_HOUR, contacts.USER_WINDOW, user_sends["oldest"], now, "for you")
        for ch in sending:
            sent = address_sends[ch]
            if int(sent["sent"]) >= contacts.ADDRESS_SENDS_PER_DAY:
                raise _limited(
                    contacts.ADDRESS_SENDS_PER_DAY, contacts.ADDRESS_WINDOW, sent["oldest"], now, f"to this {ch}"
                )

    statements: list[Statement] = []
    direct = {name: value for name, value in changes.items() if name == "display_name" or value is None}
    update = store.profile_update_statement(db, user_id, direct, now)
    if update is not None:
        statements.append(update)
    for ch in requested:
        if ch not in claims:
            statements.append(store.delete_claim_statement(db, user_id, ch))
            continue
        code = contacts.new_code()
        delivery: Delivery = "UNAVAILABLE"
        if ch in sending:
            # Sent before the claim is stored, so the write stays one batch; a code that arrives a moment
            # early simply does not match yet.
            send_id = new_id()
            delivery = await _send(services, send_id, user_id, ch, claims[ch], code)
            statements += store.log_send_statements(db, send_id, user_id, hashes[ch], now)
        hashed = contacts.code_hash(env, user_id, ch, claims[ch], code)
        statements.append(store.upsert_claim_statement(db, user_id, ch, claims[ch], hashed, delivery, now))
    if not statements:
        return record
    written = await db.batch([*statements, *read_statements(db, Caller.user(user_id))])
    return _record(written[-3:])


async def verify(services: Services, principal: Principal, channel: Channel, code: str) -> ProfileRecord:
    """POST /me/verify: the right code, within its time and attempts, makes the pending contact verified."""
    db, env = services.db, services.env
    now = services.now()
    user_id = principal.user_id or ""
    (claim_rows,) = await preloaded_or_read(db, principal, lambda caller: verify_reads(db, caller))
    claim = store.claims_from(claim_rows).get(channel)
    if claim is None:
        raise ApiError("E7003", details={"channel": channel})
    if claim.expires_at <= format_time(now) or claim.attempts_left == 0:
        raise ApiError("E7002", details={"channel": channel})
    matched = hmac.compare_digest(contacts.code_hash(env, user_id, channel, claim.value, code), claim.code_hash)
    attempt_id = new_id()
    statements = [store.spend_attempt_statement(db, user_id, channel, claim.code_hash, attempt_id, now)]
    if matched:
        guard_sql, guard_params = store.attempt_guard(user_id, channel, attempt_id, claim.value)
        statements.append(
            store.verify_contact_statement(
                db, user_id, channel, claim.value, now, guard_sql=guard_sql, guard_params=guard_params
            )
        )
        statements.append(store.finish_claim_statement(db, user_id, channel, attempt_id))
        statements += read_statements(db, Caller.user(user_id))
    results = await db.batch(statements)
    if results[0].changes != 1:
        # Replaced by a newer code, expired, or its last attempts spent by parallel requests meanwhile.
        raise ApiError("E7002", details={"channel": channel})
    if not matched:
        raise ApiError("E7001", details={"channel": channel, "attempts_left": max(claim.attempts_left - 1, 0)})
    if results[1].changes != 1:
        # Only someone who received the code gets here, so saying so reveals nothing to a prober.
        services.logger.info("contact_verify_conflict", user_id=user_id, channel=channel)
        raise ApiError("E7004", details={"channel": channel})
    services.logger.info("contact_verified", user_id=user_id, channel=channel)
    return _record(results[-3:])
