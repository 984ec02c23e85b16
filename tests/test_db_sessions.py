"""D1 read replication (issue 13): sessions and bookmarks in both adapters, and the X-D1-Bookmark header.

What workerd does (wrangler 4.86.0 / workerd 1.20260426.1, observed with a probe Worker in `wrangler dev`):
`env.DB.withSession(x)` exists; `getBookmark()` is JS null for a constraint until a query answers, then a
string shaped "00000000-00000001-00000000-000…0" (32 zeros); any other string is taken as a bookmark
without validation and kept while it sorts after the database's own. The app refuses a malformed header.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from core.context import Services
from db.d1 import D1Database, MissingBinding
from db.port import BOOKMARK_PATTERN, FIRST_PRIMARY, FIRST_UNCONSTRAINED, Database, newer_bookmark
from db.sqlite import SqliteDatabase, SqliteSession, format_bookmark
from tests.conftest import ADMIN_TOKEN
from tests.test_database import FakeD1Binding, JsNull

FAR_FUTURE = "ffffffff-ffffffff-00000000-00000000000000000000000000000000"


@pytest.fixture
def sqlite_db(tmp_path) -> SqliteDatabase:
    database = SqliteDatabase(tmp_path / "t.sqlite")
    database.connection.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT UNIQUE NOT NULL)")
    return database


@pytest.fixture
def d1(sqlite_db, monkeypatch) -> D1Database:
    import db.d1 as d1_module

    monkeypatch.setattr(d1_module, "_js_null", JsNull)
    return D1Database(FakeD1Binding(sqlite_db))


# --- the port ---------------------------------------------------------------------------------------------


def as_port(database: Database) -> Database:
    """Type-checked: each adapter (and its session) is accepted where the port is expected."""
    return database


def test_both_adapters_and_their_sessions_satisfy_the_port(sqlite_db, d1):
    for database in (sqlite_db, sqlite_db.with_session(), d1, d1.with_session(), D1Database(None)):
        assert isinstance(as_port(database), Database)


def test_local_bookmarks_have_d1s_shape_and_sort_by_age():
    assert BOOKMARK_PATTERN.match(format_bookmark(0)) and BOOKMARK_PATTERN.match(format_bookmark(2**40 + 7))
    ordered = [format_bookmark(n) for n in (0, 1, 15, 16, 2**32 - 1, 2**32, 2**40)]
    assert ordered == sorted(ordered)
    assert newer_bookmark(None, "b") == "b" and newer_bookmark("b", "a") == "b" and newer_bookmark("a", "") == "a"


# --- the SQLite adapter -----------------------------------------------------------------------------------


async def test_sqlite_session_from_a_constraint_has_a_bookmark_only_after_a_query(sqlite_db):
    session = sqlite_db.with_session(FIRST_UNCONSTRAINED)
    assert isinstance(session, SqliteSession) and session.bookmark() is None
    await session.prepare("SELECT 1").all()
    first = session.bookmark()
    assert first is not None and BOOKMARK_PATTERN.match(first)
    await session.prepare("INSERT INTO t (name) VALUES (?)").bind("a").run()
    after_write = session.bookmark()
    assert after_write is not None and after_write > first
    assert sqlite_db.bookmark() is None  # outside a session: the primary, no bookmark (as D1's plain binding)


async def test_sqlite_session_from_a_bookmark_reads_that_write_and_moves_on(sqlite_db):
    writer = sqlite_db.with_session(FIRST_PRIMARY)
    await writer.batch([writer.prepare("INSERT INTO t (name) VALUES (?)").bind("mine")])
    bookmark = writer.bookmark()
    assert bookmark is not None
    reader = sqlite_db.with_session(bookmark)
    assert reader.bookmark() == bookmark  # held from the start, as D1's session holds the one it was given
    assert await reader.prepare("SELECT name FROM t").first("name") == "mine"
    await sqlite_db.prepare("INSERT INTO t (name) VALUES ('other')").run()
    await reader.prepare("SELECT 1").all()
    assert (reader.bookmark() or "") > bookmark


async def test_sqlite_bookmark_ahead_of_the_database_still_answers_and_is_kept(sqlite_db):
    session = sqlite_db.with_session(FAR_FUTURE)
    await session.prepare("INSERT INTO t (name) VALUES ('x')").run()
    assert await session.prepare("SELECT COUNT(*) AS n FROM t").first("n") == 1
    assert session.bookmark() == FAR_FUTURE


async def test_sqlite_session_batch_is_still_atomic_and_a_failure_keeps_the_bookmark(sqlite_db):
    session = sqlite_db.with_session()
    insert = session.prepare("INSERT INTO t (name) VALUES (?)")
    with pytest.raises(Exception, match="UNIQUE"):
        await session.batch([insert.bind("x"), insert.bind("x")])
    assert await sqlite_db.prepare("SELECT COUNT(*) AS n FROM t").first("n") == 0
    assert session.bookmark() is not None


async def test_a_statement_of_another_adapter_cannot_join_a_batch(sqlite_db, d1):
    with pytest.raises(Exception, match="not a statement of this database"):
        await sqlite_db.batch([d1.prepare("SELECT 1")])  # type: ignore[list-item]
    with pytest.raises(Exception, match="not a statement of this database"):
        await d1.batch([sqlite_db.prepare("SELECT 1")])  # type: ignore[list-item]


# --- the D1 adapter (over a fake of workerd's binding) ----------------------------------------------------


async def test_d1_session_goes_through_withsession_and_converts_js_null(d1):
    binding = d1._binding
    session = d1.with_session(FIRST_UNCONSTRAINED)
    assert binding.sessions[-1].start == FIRST_UNCONSTRAINED
    assert session.bookmark() is None  # getBookmark() was JS null: not a bookmark
    await session.prepare("INSERT INTO t (name) VALUES (?)").bind("a").run()
    bookmark = session.bookmark()
    assert bookmark is not None and BOOKMARK_PATTERN.match(bookmark)
    reader = d1.with_session(bookmark)
    assert binding.sessions[-1].start == bookmark
    rows = await reader.batch([reader.prepare("SELECT name FROM t")])
    assert rows[0].results == [{"name": "a"}]
    assert binding.sessions[-1].queries == 1
    assert d1.bookmark() is None  # the plain binding always goes to the primary and has no bookmark


async def test_d1_session_without_a_binding_fails_each_query_not_the_request_setup():
    session = D1Database(None).with_session(FIRST_PRIMARY)
    assert session.bookmark() is None
    with pytest.raises(MissingBinding):
        session.prepare("SELECT 1")


# --- through the HTTP API (in process) --------------------------------------------------------------------


class SessionSpy:
    """The services' database, recording where each request's session started."""

    def __init__(self, inner: SqliteDatabase) -> None:
        self.inner = inner
        self.starts: list[str | None] = []

    def prepare(self, sql: str) -> Any:
        return self.inner.prepare(sql)

    async def batch(self, statements: Any) -> Any:
        return await self.inner.batch(statements)

    def with_session(self, constraint_or_bookmark: str | None = None) -> Database:
        self.starts.append(constraint_or_bookmark)
        return self.inner.with_session(constraint_or_bookmark)

    def bookmark(self) -> str | None:
        return None


def admin() -> dict[str, str]:
    return {"authorization": f"Bearer {ADMIN_TOKEN}"}


async def test_a_write_returns_a_bookmark_and_a_read_with_it_sees_the_write(client):
    created = await client.request("POST", "/admin/api-keys", json_body={"email": "rw@example.com"}, headers=admin())
    assert created.status == 201
    bookmark = created.headers["x-d1-bookmark"]
    assert BOOKMARK_PATTERN.match(bookmark)
    me = await client.request("GET", "/me", token=created.json()["api_key"], headers={"x-d1-bookmark": bookmark})
    assert me.status == 200 and me.json()["email"] == "rw@example.com"
    assert me.headers["x-d1-bookmark"] >= bookmark


async def test_sessions_start_from_the_bookmark_else_primary_for_writes_and_anywhere_for_reads(client, services):
    spy = SessionSpy(services.db)  # type: ignore[arg-type]
    services.db = spy
    created = await client.request("POST", "/admin/api-keys", json_body={"email": "s@example.com"}, headers=admin())
    await client.request("GET", "/health")
    await client.request("GET", "/health", headers={"x-d1-bookmark": created.headers["x-d1-bookmark"]})
    await client.request("GET", "/health", headers={"x-d1-bookmark": " "})  # empty: as if absent
    await client.request("GET", "/health", headers={"x-d1-bookmark": FIRST_PRIMARY})
    assert spy.starts == [
        FIRST_PRIMARY,
        FIRST_UNCONSTRAINED,
        created.headers["x-d1-bookmark"],
        FIRST_UNCONSTRAINED,
        FIRST_PRIMARY,
    ]


async def test_every_query_of_a_request_goes_through_its_session(client, services: Services, make_user):
    _, token = await make_user(email="q@example.com")
    root = services.db

    def bypass(*args: Any) -> Any:
        raise AssertionError("a query went around the request's session")

    root.prepare = bypass  # type: ignore[method-assign,assignment]
    root.batch = bypass  # type: ignore[method-assign,assignment]
    created = await client.request("POST", "/admin/api-keys", json_body={"email": "w@example.com"}, headers=admin())
    me = await client.request("GET", "/me", token=token)
    assert (created.status, me.status) == (201, 200)
    assert created.headers["x-d1-bookmark"] <= me.headers["x-d1-bookmark"]


@pytest.mark.parametrize(
    "value",
    ["garbage", "zzzz", "00000000-00000000-00000000-0", "00000000-00000001-00000000-" + "0" * 31 + "G", "x" * 500],
)
async def test_a_malformed_bookmark_is_a_400_not_sent_to_d1(client, value):
    response = await client.request("GET", "/health", headers={"x-d1-bookmark": value})
    assert response.status == 400 and response.error_code == "E9004"
    assert response.json()["error"]["details"]["fields"][0]["field"] == "X-D1-Bookmark"
    assert "x-d1-bookmark" not in response.headers


async def test_a_bookmark_ahead_of_the_database_still_answers(client):
    response = await client.request("GET", "/health", headers={"x-d1-bookmark": FAR_FUTURE})
    assert response.status == 200 and response.headers["x-d1-bookmark"] == FAR_FUTURE


async def test_cors_lets_browsers_send_and_read_the_bookmark(client):
    preflight = await client.request(
        "OPTIONS",
        "/me",
        headers={
            "origin": "https://app.example",
            "access-control-request-method": "GET",
            "access-control-request-headers": "x-d1-bookmark",
        },
    )
    assert "x-d1-bookmark" in preflight.headers["access-control-allow-headers"]
    answer = await client.request("GET", "/health", headers={"origin": "https://app.example"})
    assert "x-d1-bookmark" in answer.headers["access-control-expose-headers"]
    assert answer.headers["x-d1-bookmark"]


# --- through both runtimes (uvicorn + SQLite, workerd + its local D1) -------------------------------------


@pytest.mark.slow
def test_bookmarks_round_trip_over_http(live_server):
    with httpx.Client(base_url=live_server.url, timeout=30) as http:
        created = http.post("/admin/api-keys", json={"email": "live-bookmark@example.com"}, headers=admin())
        assert created.status_code == 201
        bookmark = created.headers["x-d1-bookmark"]
        assert BOOKMARK_PATTERN.match(bookmark), bookmark
        token = created.json()["api_key"]
        me = http.get("/me", headers={"authorization": f"Bearer {token}", "x-d1-bookmark": bookmark})
        assert me.status_code == 200 and me.json()["email"] == "live-bookmark@example.com"
        assert BOOKMARK_PATTERN.match(me.headers["x-d1-bookmark"]) and me.headers["x-d1-bookmark"] >= bookmark
        # Without a bookmark a read still answers and hands one out.
        assert BOOKMARK_PATTERN.match(http.get("/health").headers["x-d1-bookmark"])
        bad = http.get("/me", headers={"authorization": f"Bearer {token}", "x-d1-bookmark": "garbage"})
        assert bad.status_code == 400 and bad.json()["error"]["code"] == "E9004"
        assert "x-d1-bookmark" not in bad.headers


def test_a_requests_services_share_the_outbound_client(services: Services):
    made: list[object] = []
    services.http_factory = lambda: made.append(object()) or made[-1]  # type: ignore[assignment,func-returns-value]
    per_request = services.with_db(services.db.with_session())
    assert per_request.db is not services.db and per_request.env is services.env
    assert per_request.http is services.http and len(made) == 1
