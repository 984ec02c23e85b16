"""Round-trip counting (issue 13): a Database wrapper that counts sequential D1 calls, and a walk of every endpoint."""

from __future__ import annotations

import asyncio
import contextvars
import json as jsonlib
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import parse_qs, parse_qsl, urlencode, urlsplit

import httpx
from eth_account import Account
from eth_account.messages import encode_defunct

from api.routes import ROUTES
from chain.blockcache import BlockCache
from core.clock import Clock, ManualClock
from core.config import Env
from core.context import Services
from core.logging import Logger, MemoryLogSink
from core.ratelimit import SlidingWindowLimiter
from db.port import QueryResult
from local.server import build_asgi, open_database
from tests.conftest import ADMIN_TOKEN, BASE_VARS, MIGRATIONS
from tests.support.client import ApiClient

ETH = 10**18
# The only chain the walk needs: a local anvil node, reached as network "local" (chain id 31337).
LOCAL_CHAIN_ID = "eip155:31337"
# Read endpoints are at target with 1 round trip, write endpoints with 2 (one read batch, one write batch).
READ_TARGET = 1
WRITE_TARGET = 2

# Set inside work deferred past the response (ctx.waitUntil / a background task): the user never waits for it.
_after_response: contextvars.ContextVar[bool] = contextvars.ContextVar("after_response", default=False)


# -- the counting database ---------------------------------------------------------------------------------


@dataclass
class Call:
    """One awaited database call: its kind (first/all/run/batch) and the SQL it sent."""

    kind: str
    sql: tuple[str, ...]
    # False when it overlapped a call already in flight (asyncio.gather): no extra sequential round trip.
    sequential: bool


@dataclass
class Tally:
    """What the wrapped database saw since the last reset()."""

    round_trips: int = 0
    calls: list[Call] = field(default_factory=list)
    in_flight: int = 0

    def reset(self) -> None:
        self.round_trips = 0
        self.calls = []

    def describe(self) -> str:
        """The calls, one a line, for assertion messages."""
        lines = []
        for number, call in enumerate(self.calls, 1):
            marker = "" if call.sequential else " (concurrent)"
            shown = "; ".join(" ".join(sql.split())[:90] for sql in call.sql[:3])
            statements = shown + (f"; ... {len(call.sql) - 3} more" if len(call.sql) > 3 else "")
            lines.append(f"  {number}. {call.kind}{marker}: {statements}")
        return "\n".join(lines)


def _is_database(value: Any) -> bool:
    return callable(getattr(value, "prepare", None)) and callable(getattr(value, "batch", None))


class CountingStatement:
    """A prepared statement whose first/all/run each count as a round trip; everything else is delegated."""

    def __init__(self, tally: Tally, inner: Any, sql: str) -> None:
        self._tally = tally
        self.inner = inner
        self._sql = sql

    def bind(self, *params: Any) -> CountingStatement:
        return CountingStatement(self._tally, self.inner.bind(*params), self._sql)

    async def first(self, column: str | None = None) -> Any:
        return await _counted(self._tally, "first", (self._sql,), lambda: self.inner.first(column))

    async def all(self) -> QueryResult:
        return await _counted(self._tally, "all", (self._sql,), self.inner.all)

    async def run(self) -> QueryResult:
        return await _counted(self._tally, "run", (self._sql,), self.inner.run)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


class CountingDatabase:
    """The Database port around another one: each awaited first()/all()/run()/batch() is one round trip.

    Calls that overlap (started while another is in flight) share the round trip, as they would on D1.
    Anything else the inner database offers (sessions, bookmarks, executescript ...) is delegated; a database
    it returns (e.g. a D1 session) is wrapped too, counting into the same tally.
    """

    def __init__(self, inner: Any, tally: Tally | None = None) -> None:
        self.inner = inner
        self.tally = tally if tally is not None else Tally()

    def prepare(self, sql: str) -> CountingStatement:
        return CountingStatement(self.tally, self.inner.prepare(sql), sql)

    async def batch(self, statements: Sequence[Any]) -> list[QueryResult]:
        inner = [statement.inner if isinstance(statement, CountingStatement) else statement for statement in statements]
        sqls = tuple(getattr(statement, "_sql", getattr(statement, "sql", "?")) for statement in statements)
        return await _counted(self.tally, "batch", sqls, lambda: self.inner.batch(inner))

    def with_session(self, constraint_or_bookmark: str | None = None) -> CountingDatabase:
        """A D1 session of the inner database, counted into the same tally."""
        return CountingDatabase(self.inner.with_session(constraint_or_bookmark), self.tally)

    def bookmark(self) -> str | None:
        return self.inner.bookmark()

    def __getattr__(self, name: str) -> Any:
        value = getattr(self.inner, name)
        if not callable(value) or _is_database(value):
            return CountingDatabase(value, self.tally) if _is_database(value) else value

        def wrapped(*args: Any, **kwargs: Any) -> Any:
            result = value(*args, **kwargs)
            return CountingDatabase(result, self.tally) if _is_database(result) else result

        return wrapped


async def _counted(tally: Tally, kind: str, sql: tuple[str, ...], run: Callable[[], Awaitable[Any]]) -> Any:
    if _after_response.get():
        return await run()
    sequential = tally.in_flight == 0
    if sequential:
        tally.round_trips += 1
    tally.calls.append(Call(kind, sql, sequential))
    tally.in_flight += 1
    try:
        # Yield once first, so calls started together (asyncio.gather) are seen as overlapping.
        await asyncio.sleep(0)
        return await run()
    finally:
        tally.in_flight -= 1


def count_round_trips(services: Services) -> Tally:
    """Wraps services.db in a CountingDatabase (idempotent) and returns its tally."""
    counting = services.db if isinstance(services.db, CountingDatabase) else CountingDatabase(services.db)
    services.db = counting
    return counting.tally


def exclude_after_response(services: Services) -> None:
    """Work deferred past the response (services.defer, set by the adapter) is not counted: call after build_asgi."""
    deferred = services.defer

    async def after(work: Awaitable[Any]) -> Any:
        _after_response.set(True)
        return await work

    def defer(work: Awaitable[Any]) -> None:
        deferred(after(work))

    services.defer = defer


# -- the walk ----------------------------------------------------------------------------------------------


@dataclass
class Answer:
    status: int
    body: Any


class Api(Protocol):
    """How the walk reaches the API: one request, measured under `label` (None: setup, not measured)."""

    async def call(
        self,
        label: str | None,
        method: str,
        path: str,
        *,
        json: Any = None,
        token: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> Answer: ...


class Chain(Protocol):
    """The part of local.anvil.AnvilNode the walk needs (funding the wallets)."""

    @property
    def url(self) -> str: ...

    def set_balance(self, address: str, wei: int) -> None: ...


def route_key(label: str) -> str:
    """'POST /challenges (FIRE)' → 'POST /challenges': the route a label measures."""
    return label.split(" (", 1)[0]


def route_keys() -> set[str]:
    return {f"{route.method} {route.path}" for route in ROUTES}


def is_read(label: str) -> bool:
    return route_key(label).split(" ", 1)[0] in {"GET", "HEAD"}


def target(label: str) -> int:
    return READ_TARGET if is_read(label) else WRITE_TARGET


class WalkError(AssertionError):
    """A step of the walk did not answer as expected (the API changed, or the walk is wrong)."""


def _sign(message: str, key: bytes) -> str:
    signature = Account.sign_message(encode_defunct(text=message), private_key=key).signature.hex()
    return signature if signature.startswith("0x") else "0x" + signature


@dataclass
class _Party:
    user_id: str
    token: str
    wallet: Any = field(default_factory=Account.create)

    @property
    def address(self) -> str:
        return str(self.wallet.address)


# Labels are "METHOD /route/path" plus, where one route is walked in several ways, a " (mode, case)" suffix.
CHALLENGE = "/challenges/{challenge_id}"


class Walk:
    """Calls every endpoint once under its label, in an order that makes each call succeed."""

    def __init__(self, api: Api, chain: Chain, admin_token: str, tag: str = "") -> None:
        self.api = api
        self.chain = chain
        self.admin = admin_token
        # Distinguishes the users of several walks against one server.
        self.tag = tag
        self.seen: set[str] = set()

    async def step(
        self,
        label: str | None,
        method: str,
        path: str,
        *,
        expect: int | tuple[int, ...] = 200,
        params: dict[str, str] | None = None,
        json: Any = None,
        token: str | None = None,
        headers: dict[str, str] | None = None,
        query: dict[str, str] | None = None,
    ) -> Any:
        """One request; `label` "" measures it as the bare route, "(…)" adds a suffix, None leaves it unmeasured."""
        concrete = path.format(**(params or {})) + (f"?{urlencode(query)}" if query else "")
        if label is not None:
            full = f"{method} {path} {label}".strip()
            if full in self.seen:
                raise WalkError(f"label measured twice: {full}")
            self.seen.add(full)
            label = full
        answer = await self.api.call(label, method, concrete, json=json, token=token, headers=headers)
        allowed = (expect,) if isinstance(expect, int) else expect
        if answer.status not in allowed:
            raise WalkError(f"{method} {concrete} ({label}): {answer.status} {str(answer.body)[:500]}")
        return answer.body

    async def run(self) -> None:
        s = self.step
        await s("", "GET", "/health")
        await s("", "GET", "/openapi.json")
        await s("", "GET", "/gatekeeper/v2/networks")
        creator = await self.user("", "walk-creator@example.com")
        counterparty = await self.user(None, "walk-counter@example.com")
        await self.accounts(creator)
        await self.webhooks(creator)
        await self.funds(creator)
        await self.solo(creator)
        await self.gatekeeper(creator, counterparty)
        await self.fire(creator, counterparty)
        await self.enforced(creator, counterparty)
        await self.pages(creator, counterparty)

    async def user(self, label: str | None, email: str) -> _Party:
        email = email.replace("@", f"{self.tag}@")
        body = await self.step(label, "POST", "/admin/api-keys", expect=201, json={"email": email}, token=self.admin)
        return _Party(body["user_id"], body["api_key"])

    async def accounts(self, me: _Party) -> None:
        s = self.step
        await s("", "GET", "/me", token=me.token)
        await s("", "PATCH", "/me", json={"display_name": "Walker", "email": "walker-new@example.com"}, token=me.token)
        # The code only ever leaves by email/SMS: a wrong one walks the same read-then-write path (400 E7001).
        await s("(wrong code)", "POST", "/me/verify", expect=400, json={"channel": "email", "code": "000000"},
                token=me.token)  # fmt: skip

    async def webhooks(self, me: _Party) -> None:
        s = self.step
        hook = await s("", "POST", "/webhooks", expect=201, json={"url": "https://hooks.example.com/walk"},
                       token=me.token)  # fmt: skip
        params = {"webhook_id": hook["id"]}
        await s("", "GET", "/webhooks", token=me.token)
        await s("", "GET", "/webhooks/{webhook_id}", params=params, token=me.token)
        await s("", "POST", "/webhooks/{webhook_id}/rotate-secret", params=params, token=me.token)
        await s("", "GET", "/webhooks/{webhook_id}/deliveries", params=params, token=me.token)
        await s("", "DELETE", "/webhooks/{webhook_id}", expect=(200, 204), params=params, token=me.token)

    async def wallet(self, label: str | None, party: _Party) -> None:
        created = await self.step(
            label,
            "POST",
            "/gatekeeper/v2/wallet/challenge",
            expect=201,
            json={"wallet_address": party.address, "chain_id": LOCAL_CHAIN_ID},
            token=party.token,
        )
        signature = _sign(created["message"], party.wallet.key)
        await self.step(label, "POST", "/gatekeeper/v2/wallet/verify",
                        json={"challenge_id": created["challenge_id"], "signature": signature}, token=party.token)  # fmt: skip

    async def funds(self, me: _Party) -> None:
        self.chain.set_balance(me.address, 2 * ETH)
        checked = await self.step(
            "",
            "POST",
            "/gatekeeper/v2/funds/check",
            json={"wallet_address": me.address, "network": "local", "asset_type": "NATIVE", "min_balance": str(ETH)},
            token=me.token,
        )
        await self.step("", "POST", "/gatekeeper/v2/funds/attestations/{attestation_id}/verify",
                        params={"attestation_id": checked["attestation_id"]}, json={"balance": str(2 * ETH)},
                        token=me.token)  # fmt: skip

    async def create(self, mode: str | None, creator: _Party, body: dict[str, Any]) -> dict[str, str]:
        label = None if mode is None else f"({mode})"
        created = await self.step(label, "POST", "/challenges", expect=201, json={"title": "Walk", **body},
                                  token=creator.token)  # fmt: skip
        return {"challenge_id": created["id"]}

    async def action(
        self, mode: str | None, name: str, party: _Party | str, params: dict[str, str], json: Any = None
    ) -> Any:
        token = party if isinstance(party, str) else party.token
        label = None if mode is None else f"({mode})" if mode else ""
        return await self.step(label, "POST", f"{CHALLENGE}/{name}", params=params, json=json or {}, token=token)

    async def solo(self, me: _Party) -> None:
        s = self.step
        params = await self.create("SOLO", me, {"mode": "SOLO"})
        await self.action("SOLO", "confirm", me, params)
        await s("", "GET", "/challenges", token=me.token)
        await s("", "GET", CHALLENGE, params=params, token=me.token)
        await s("", "GET", f"{CHALLENGE}/events", params=params, token=me.token)
        await s("", "GET", "/proof/{challenge_id}", params=params, headers={"accept": "application/json"})
        await s("", "GET", f"{CHALLENGE}/openings", params=params, token=me.token)
        cancelled = await self.create(None, me, {"mode": "SOLO"})
        await self.action("", "cancel", me, cancelled)

    def gatekeeper_body(self, creator: _Party, counterparty: _Party) -> dict[str, Any]:
        def side(party: _Party) -> dict[str, Any]:
            check = {"asset_type": "NATIVE", "min_balance": str(ETH), "currency_symbol": "ETH"}
            return {"wallet_address": party.address, "network": "local", "funds_checks": [check]}

        return {
            "mode": "GATEKEEPER",
            "counterparty_user_id": counterparty.user_id,
            "gatekeeper_requirements": {"creator": side(creator), "counterparty": side(counterparty)},
        }

    async def gatekeeper(self, creator: _Party, counterparty: _Party) -> None:
        mode = "GATEKEEPER"
        for party in (creator, counterparty):
            self.chain.set_balance(party.address, 2 * ETH)
        # 1. Accepted before any wallet is verified: waits for the gatekeeper, then verify locks it.
        params = await self.create(mode, creator, self.gatekeeper_body(creator, counterparty))
        await self.action(mode, "send", creator, params)
        assert (await self.action(mode, "accept", counterparty, params))["status"] == "AWAITING_GATEKEEPER"
        await self.wallet("", creator)
        await self.wallet(None, counterparty)
        assert (await self.action(mode, "verify", creator, params))["status"] == "INTENT_LOCKED"
        await self.action(None, "complete", creator, params)
        assert (await self.action(mode, "complete", counterparty, params))["status"] == "COMPLETED"
        # 2. Wallets verified: accept locks at once; a proposal is then made through resolve.
        params = await self.create(None, creator, self.gatekeeper_body(creator, counterparty))
        await self.action(None, "send", creator, params)
        locked = await self.action(f"{mode}, wallets verified: locks", "accept", counterparty, params)
        assert locked["status"] == "INTENT_LOCKED"
        await self.action(mode, "resolve", creator, params, {"outcome": "CREATOR_WIN"})

    async def fire(self, creator: _Party, counterparty: _Party) -> None:
        mode = "FIRE"
        config = {"honesty_bond_amount": "1000", "currency_code": "USDC", "resolution_strategy": "MODERATOR"}
        body = {"mode": mode, "counterparty_user_id": counterparty.user_id, "fire_config": config}
        bond = {"type": "HONESTY_BOND", "amount": "1000", "currency_code": "USDC"}
        params = await self.create(mode, creator, body)
        await self.action(mode, "send", creator, params)
        await self.step(f"({mode})", "POST", f"{CHALLENGE}/stake", params=params, json=bond, token=creator.token)
        await self.action(mode, "accept", counterparty, params)
        locked = await self.step(f"({mode}, second bond locks)", "POST", f"{CHALLENGE}/stake", params=params, json=bond,
                                 token=counterparty.token)  # fmt: skip
        assert locked["status"] == "AWAITING_RESOLUTION"
        await self.action(f"{mode}, proposal", "resolve", creator, params, {"outcome": "CREATOR_WIN"})
        assert (await self.action(mode, "dispute", counterparty, params))["status"] == "DISPUTED"
        await self.action(f"{mode}, moderator", "resolve", self.admin, params, {"outcome": "COUNTERPARTY_WIN"})

    async def enforced(self, creator: _Party, counterparty: _Party) -> None:
        mode = "ENFORCED"
        body = {
            "mode": mode,
            "counterparty_user_id": counterparty.user_id,
            "enforced_config": {"stake_amount": "500", "currency_code": "USDC"},
        }
        stake = {"type": "BASE", "amount": "500", "currency_code": "USDC"}
        for number in (1, 2):
            label = mode if number == 1 else None
            params = await self.create(label, creator, body)
            await self.action(label, "send", creator, params)
            await self.step(None if label is None else f"({mode})", "POST", f"{CHALLENGE}/stake", params=params, json=stake,
                            token=creator.token)  # fmt: skip
            await self.step(None, "POST", f"{CHALLENGE}/stake", params=params, json=stake, token=counterparty.token)
            assert (await self.action(label, "accept", counterparty, params))["status"] == "ACTIVE"
            await self.action(label, "respond", creator, params, {"response": "delivered"})
            second = label and f"{mode}, second → AWAITING_RESOLUTION"
            await self.action(second, "respond", counterparty, params, {"response": "received"})
            await self.action(label and f"{mode}, proposal", "resolve", creator, params, {"outcome": "CREATOR_WIN"})
            # `complete` is SOLO/GATEKEEPER only: an ENFORCED challenge completes when the other party agrees.
            if number == 1:
                agreed = await self.action(f"{mode}, agreement", "resolve", counterparty, params,
                                           {"outcome": "CREATOR_WIN"})  # fmt: skip
                assert agreed["status"] == "COMPLETED"
            else:
                assert (await self.action(mode, "dispute", counterparty, params))["status"] == "DISPUTED"

    async def pages(self, creator: _Party, counterparty: _Party) -> None:
        """The browser pages and the invitation: connect, the creator's link, the invite page, decline."""
        s = self.step
        await s("", "GET", "/connect")
        signing = await s(None, "POST", "/gatekeeper/v2/wallet/challenge", expect=201,
                          json={"wallet_address": counterparty.address, "chain_id": LOCAL_CHAIN_ID})  # fmt: skip
        await s("(signing request)", "GET", "/connect", query={"challenge_id": signing["challenge_id"]})
        params = await self.create(None, creator, self.gatekeeper_body(creator, counterparty))
        await self.action(None, "send", creator, params)
        link = await s("", "GET", f"{CHALLENGE}/invitation", params=params, token=creator.token)
        token = parse_qs(urlsplit(link["invite_url"]).query)["token"][0]
        await s("", "GET", "/invite/{challenge_id}", params=params, query={"token": token})
        assert (await self.action("", "decline", counterparty, params))["status"] == "CANCELLED"


# -- the measurements --------------------------------------------------------------------------------------


def walk_vars(rpc_url: str) -> dict[str, str]:
    """The tests' configuration with the local chain as the only network and no relay work after responses."""
    env_vars = dict(BASE_VARS, RPC_URL_LOCAL=rpc_url, RPC_TIMEOUT_SECONDS="5", RELAY_DISPATCH_AFTER_RESPONSE="false")
    env_vars.pop("RPC_URL_ETH_MAINNET", None)
    return env_vars


@dataclass
class CountingApi:
    """Drives the in-process ASGI client and records each labelled request's round trips."""

    client: ApiClient
    tally: Tally
    counts: dict[str, int] = field(default_factory=dict)
    calls: dict[str, str] = field(default_factory=dict)
    traces: dict[str, list[Call]] = field(default_factory=dict)

    async def call(
        self,
        label: str | None,
        method: str,
        path: str,
        *,
        json: Any = None,
        token: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> Answer:
        self.tally.reset()
        body = request_body(method, json)
        path, _, query = path.partition("?")
        response = await self.client.request(
            method, path, json_body=body, token=token, headers=headers, query=dict(parse_qsl(query))
        )
        if label is not None:
            self.counts[label] = self.tally.round_trips
            self.calls[label] = self.tally.describe()
            self.traces[label] = list(self.tally.calls)
        return Answer(response.status, _decode(response.body))


def request_body(method: str, json: Any) -> Any:
    """What the walk sends: no body on GET/DELETE/HEAD, else the given JSON or an empty object."""
    return None if method in {"GET", "DELETE", "HEAD"} else json if json is not None else {}


async def count_walk(db_path: Path, chain: Chain, clock: Clock | None = None) -> CountingApi:
    """Walks the in-process app on a fresh database at db_path; every labelled request's round trips."""
    sink = MemoryLogSink()
    database = open_database(db_path, MIGRATIONS)
    services = Services(
        env=Env(walk_vars(chain.url)),
        db=database,
        clock=clock or ManualClock(datetime(2026, 11, 24, 12, 0, 0, tzinfo=UTC)),
        logger=Logger(sink),
        rate_limiter=SlidingWindowLimiter(),
        block_cache=BlockCache(),
    )
    tally = count_round_trips(services)
    adapter = build_asgi(services)
    exclude_after_response(services)
    api = CountingApi(ApiClient(adapter), tally)
    try:
        await walk(api, chain, ADMIN_TOKEN)
    except WalkError as error:
        errors = [record for record in sink.records() if record.get("level") == "error"]
        raise WalkError(f"{error}\nserver errors: {errors[-3:]}") from None
    finally:
        await adapter.drain()
        database.close()
    return api


@dataclass
class TimingApi:
    """Drives a server over HTTP (an httpx.AsyncClient with base_url) and times each labelled request."""

    http: httpx.AsyncClient
    seconds: dict[str, float] = field(default_factory=dict)

    async def call(
        self,
        label: str | None,
        method: str,
        path: str,
        *,
        json: Any = None,
        token: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> Answer:
        all_headers = dict(headers or {})
        if token is not None:
            all_headers["authorization"] = f"Bearer {token}"
        body = request_body(method, json)
        started = time.perf_counter()
        response = await self.http.request(method, path, json=body, headers=all_headers)
        elapsed = time.perf_counter() - started
        if label is not None:
            self.seconds[label] = elapsed
        return Answer(response.status_code, _decode(response.content))


def _decode(body: bytes) -> Any:
    try:
        return jsonlib.loads(body)
    except ValueError:
        return body.decode(errors="replace")


async def walk(api: Api, chain: Chain, admin_token: str, tag: str = "") -> set[str]:
    """Runs the walk; returns the labels it measured."""
    runner = Walk(api, chain, admin_token, tag)
    await runner.run()
    return runner.seen
