"""Round trips of the accounts routes (issue 13): the auth lookup and the route's reads share one D1 batch."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest

from core.auth import issue_session
from core.context import Services
from db.port import Database, QueryResult, Statement


class _CountedStatement:
    """Counts each awaited first/all/run: one sequential round trip apiece."""

    def __init__(self, counter: Counter, inner: Statement) -> None:
        self.counter, self.inner = counter, inner

    def bind(self, *params: Any) -> _CountedStatement:
        return _CountedStatement(self.counter, self.inner.bind(*params))

    async def first(self, column: str | None = None) -> Any:
        self.counter._count()
        return await self.inner.first(column)

    async def all(self) -> QueryResult:
        self.counter._count()
        return await self.inner.all()

    async def run(self) -> QueryResult:
        self.counter._count()
        return await self.inner.run()


class Counter:
    """A Database that counts the calls a request waits for (a batch is one round trip)."""

    def __init__(self, inner: Database, root: Counter | None = None) -> None:
        self.inner = inner
        self.root = root or self
        self.round_trips = 0

    def _count(self) -> None:
        self.root.round_trips += 1

    def prepare(self, sql: str) -> _CountedStatement:
        return _CountedStatement(self, self.inner.prepare(sql))

    async def batch(self, statements: Sequence[Any]) -> list[QueryResult]:
        self._count()
        return await self.inner.batch([statement.inner for statement in statements])

    def with_session(self, constraint_or_bookmark: str | None = None) -> Counter:
        # A D1 session (read replication) counts into the same tally: its calls are the request's.
        return Counter(self.inner.with_session(constraint_or_bookmark), self.root)

    def bookmark(self) -> str | None:
        return self.inner.bookmark()


@pytest.fixture
def counter(services: Services) -> Counter:
    counted = Counter(services.db)
    services.db = counted  # type: ignore[assignment]
    return counted


async def count(counter: Counter, call: Any) -> tuple[Any, int]:
    counter.round_trips = 0
    response = await call
    return response, counter.round_trips


async def test_get_me_is_one_round_trip_with_an_api_key(client, counter, make_user):
    _, key = await make_user(email="one@example.com", display_name="One")
    response, trips = await count(counter, client.get("/me", token=key))
    assert response.status == 200, response.text
    assert response.json()["email"] == "one@example.com"
    assert response.json()["display_name"] == "One"
    assert trips == 1


async def test_get_me_is_one_round_trip_with_a_session(client, counter, services, make_user):
    user_id, _ = await make_user(display_name="Wallet owner")
    token, _ = issue_session(services.env, user_id, "0x" + "ab" * 20, services.now())
    response, trips = await count(counter, client.get("/me", token=token))
    assert response.status == 200, response.text
    assert response.json()["id"] == user_id and response.json()["display_name"] == "Wallet owner"
    assert trips == 1


async def test_get_me_refuses_a_revoked_key_and_reads_nothing_for_it(client, counter, services, make_user):
    _, key = await make_user(display_name="Gone")
    await services.db.prepare("UPDATE api_keys SET revoked_at = '2020-01-01T00:00:00Z'").run()
    response, trips = await count(counter, client.get("/me", token=key))
    assert response.status == 401
    assert response.json()["error"]["code"] == "E9006"
    assert "Gone" not in response.text
    assert trips == 1


async def test_patch_me_is_two_round_trips(client, counter, make_user):
    _, key = await make_user()
    response, trips = await count(counter, client.patch("/me", json={"display_name": "Renamed"}, token=key))
    assert response.status == 200, response.text
    assert response.json()["display_name"] == "Renamed"
    assert trips == 2
    # A new email becomes a pending claim: its send caps are read in the auth batch too.
    response, trips = await count(counter, client.patch("/me", json={"email": "new@example.com"}, token=key))
    assert response.status == 200, response.text
    assert response.json()["pending_email"]["value"] == "new@example.com"
    assert trips == 2


async def test_patch_me_keeping_the_verified_email_is_two_round_trips(client, counter, make_user):
    _, key = await make_user(email="same@example.com")
    response, trips = await count(counter, client.patch("/me", json={"email": "same@example.com"}, token=key))
    assert response.status == 200, response.text
    assert response.json()["email"] == "same@example.com"
    assert trips == 2


async def test_verify_me_is_two_round_trips(client, counter, make_user):
    _, key = await make_user()
    await client.patch("/me", json={"email": "wrong@example.com"}, token=key)
    response, trips = await count(
        counter, client.post("/me/verify", json={"channel": "email", "code": "000000"}, token=key)
    )
    # No provider is configured in tests, so no code was sent; any code is refused with the attempt counted.
    assert response.status == 400, response.text
    assert response.json()["error"]["code"] in {"E7001", "E7002"}
    assert trips == 2
    response, trips = await count(
        counter, client.post("/me/verify", json={"channel": "phone", "code": "000000"}, token=key)
    )
    assert response.json()["error"]["code"] == "E7003"
    assert trips == 1
