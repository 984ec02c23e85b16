"""The Database port: SQLite adapter semantics and the D1 adapter over a fake of the JS binding."""

from __future__ import annotations

import sqlite3
from typing import Any

import pytest

from db.d1 import D1Database, to_python
from db.port import MAX_SAFE_INTEGER, ConstraintError, DatabaseError
from db.sqlite import SqliteDatabase


@pytest.fixture
def sqlite_db(tmp_path):
    database = SqliteDatabase(tmp_path / "t.sqlite")
    database.connection.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT UNIQUE NOT NULL, note TEXT)")
    return database


async def test_first_all_run(sqlite_db):
    result = await sqlite_db.prepare("INSERT INTO t (name, note) VALUES (?, ?)").bind("a", None).run()
    assert result.changes == 1 and result.last_row_id == 1
    await sqlite_db.prepare("INSERT INTO t (name) VALUES (?)").bind("b").run()
    assert await sqlite_db.prepare("SELECT * FROM t WHERE name = ?").bind("a").first() == {
        "id": 1, "name": "a", "note": None,
    }  # fmt: skip
    assert await sqlite_db.prepare("SELECT name FROM t ORDER BY id").first("name") == "a"
    assert await sqlite_db.prepare("SELECT * FROM t WHERE name = ?").bind("zzz").first() is None
    rows = (await sqlite_db.prepare("SELECT name FROM t ORDER BY id").all()).results
    assert rows == [{"name": "a"}, {"name": "b"}]


async def test_rows_keep_column_order_and_a_repeated_name_keeps_its_first_value(sqlite_db):
    await sqlite_db.prepare("INSERT INTO t (name, note) VALUES (?, ?)").bind("a", "n").run()
    row = await sqlite_db.prepare("SELECT note, id, name FROM t").first()
    assert list(row.items()) == [("note", "n"), ("id", 1), ("name", "a")]
    joined = await sqlite_db.prepare("SELECT t.name, u.name, t.id FROM t JOIN t AS u ON u.id = t.id").first()
    assert joined == {"name": "a", "id": 1}
    repeated = await sqlite_db.prepare("SELECT 1 AS x, 2 AS x, 3 AS y").first()
    assert list(repeated.items()) == [("x", 1), ("y", 3)]
    # A statement prepared elsewhere on the connection keeps its own row shape.
    assert isinstance(sqlite_db.connection.execute("SELECT 1 AS x").fetchone(), sqlite3.Row)


async def test_batch_is_atomic(sqlite_db):
    insert = sqlite_db.prepare("INSERT INTO t (name) VALUES (?)")
    with pytest.raises(ConstraintError):
        await sqlite_db.batch([insert.bind("x"), insert.bind("y"), insert.bind("x")])
    assert (await sqlite_db.prepare("SELECT COUNT(*) AS n FROM t").first("n")) == 0
    results = await sqlite_db.batch([insert.bind("x"), insert.bind("y")])
    assert [result.changes for result in results] == [1, 1]


async def test_batch_failure_of_any_kind_rolls_back(sqlite_db):
    insert = sqlite_db.prepare("INSERT INTO t (name) VALUES (?)")
    with pytest.raises(DatabaseError):
        await sqlite_db.batch([insert.bind("x"), sqlite_db.prepare("SELECT * FROM missing_table")])
    assert (await sqlite_db.prepare("SELECT COUNT(*) AS n FROM t").first("n")) == 0
    # The connection is usable again afterwards.
    await sqlite_db.batch([insert.bind("z")])


async def test_conditional_update_reports_changes(sqlite_db):
    await sqlite_db.prepare("INSERT INTO t (name, note) VALUES ('a', 'open')").run()
    update = sqlite_db.prepare("UPDATE t SET note = 'closed' WHERE name = 'a' AND note = ?")
    assert (await update.bind("open").run()).changes == 1
    assert (await update.bind("open").run()).changes == 0


def test_parameters_d1_would_refuse(sqlite_db):
    statement = sqlite_db.prepare("SELECT ?")
    with pytest.raises(DatabaseError, match="2\\^53"):
        statement.bind(MAX_SAFE_INTEGER + 1)
    with pytest.raises(DatabaseError, match="too many"):
        sqlite_db.prepare("SELECT 1").bind(*range(101))
    with pytest.raises(DatabaseError, match="unsupported"):
        statement.bind({"a": 1})
    assert statement.bind(True).params == (1,)


# --- D1 adapter against a fake that behaves like the JS binding (proxies with to_py, null, batch) ---


class JsNull:
    """Stands in for pyodide's jsnull: D1 returns it for SQL NULL when null conversion is off."""

    def __repr__(self) -> str:
        return "null"


class JsProxy:
    def __init__(self, value: Any) -> None:
        self._value = value

    def to_py(self) -> Any:
        return self._value


class FakeJsStatement:
    def __init__(self, backend: SqliteDatabase, sql: str, params: tuple[Any, ...] = ()) -> None:
        self.backend, self.sql, self.params = backend, sql, params

    def bind(self, *params: Any) -> FakeJsStatement:
        if any(param is None for param in params):
            raise TypeError("D1_TYPE_ERROR: Type 'undefined' not supported")
        return FakeJsStatement(self.backend, self.sql, tuple(None if isinstance(p, JsNull) else p for p in params))

    def _execute(self) -> JsProxy:
        cursor = self.backend.connection.execute(self.sql, self.params)
        rows = [{key: (JsNull() if value is None else value) for key, value in dict(row).items()} for row in cursor]
        meta = {"changes": max(cursor.rowcount, 0), "last_row_id": cursor.lastrowid}
        return JsProxy({"results": [JsProxy(row) for row in rows], "success": True, "meta": JsProxy(meta)})

    async def all(self) -> JsProxy:
        return self._execute()

    async def run(self) -> JsProxy:
        return self._execute()


class FakeD1Binding:
    def __init__(self, backend: SqliteDatabase) -> None:
        self.backend = backend
        self.batches = 0
        self.sessions: list[FakeD1Session] = []

    def prepare(self, sql: str) -> FakeJsStatement:
        return FakeJsStatement(self.backend, sql)

    def withSession(self, constraint_or_bookmark: Any = None) -> FakeD1Session:
        session = FakeD1Session(self, constraint_or_bookmark)
        self.sessions.append(session)
        return session

    async def batch(self, statements: list[FakeJsStatement]) -> list[JsProxy]:
        self.batches += 1
        connection = self.backend.connection
        connection.execute("BEGIN")
        try:
            results = [statement._execute() for statement in statements]
        except Exception as error:
            connection.execute("ROLLBACK")
            raise RuntimeError(f"D1_ERROR: {error}") from None
        connection.execute("COMMIT")
        return results


class FakeD1Session:
    """workerd's D1DatabaseSession as read from its d1-api source and observed in `wrangler dev`:
    getBookmark() is JS null for a constraint until a query answers, any other string is kept as given (no
    validation), and after each query the lexicographically newer of held and returned bookmark is kept."""

    def __init__(self, binding: FakeD1Binding, start: Any) -> None:
        start = (start or "").strip() or "first-unconstrained"
        self.binding, self.start, self.current = binding, start, start
        self.queries = 0

    def getBookmark(self) -> Any:
        return JsNull() if self.current in {"first-primary", "first-unconstrained"} else self.current

    def _update(self) -> None:
        self.queries += 1
        held = self.getBookmark()
        returned = self.binding.backend.current_bookmark()
        if isinstance(held, JsNull) or held < returned:
            self.current = returned

    def prepare(self, sql: str) -> FakeSessionStatement:
        return FakeSessionStatement(self, FakeJsStatement(self.binding.backend, sql))

    async def batch(self, statements: list[Any]) -> list[JsProxy]:
        try:
            return await self.binding.batch([getattr(statement, "inner", statement) for statement in statements])
        finally:
            self._update()


class FakeSessionStatement:
    def __init__(self, session: FakeD1Session, inner: FakeJsStatement) -> None:
        self.session, self.inner = session, inner

    def bind(self, *params: Any) -> FakeSessionStatement:
        return FakeSessionStatement(self.session, self.inner.bind(*params))

    async def all(self) -> JsProxy:
        try:
            return await self.inner.all()
        finally:
            self.session._update()

    async def run(self) -> JsProxy:
        return await self.all()


@pytest.fixture
def d1(sqlite_db, monkeypatch):
    import db.d1 as d1_module

    monkeypatch.setattr(d1_module, "_js_null", JsNull)
    return D1Database(FakeD1Binding(sqlite_db))


async def test_d1_adapter_converts_results_and_nulls(d1):
    await d1.prepare("INSERT INTO t (name, note) VALUES (?, ?)").bind("a", None).run()
    row = await d1.prepare("SELECT * FROM t").first()
    assert row == {"id": 1, "name": "a", "note": None}
    assert await d1.prepare("SELECT name FROM t").first("name") == "a"
    result = await d1.prepare("UPDATE t SET note = 'n' WHERE name = ?").bind("a").run()
    assert result.changes == 1


async def test_d1_batch_is_atomic_and_errors_translate(d1):
    insert = d1.prepare("INSERT INTO t (name) VALUES (?)")
    with pytest.raises(ConstraintError):
        await d1.batch([insert.bind("x"), insert.bind("x")])
    assert await d1.prepare("SELECT COUNT(*) AS n FROM t").first("n") == 0
    results = await d1.batch([insert.bind("x"), insert.bind("y")])
    assert [result.changes for result in results] == [1, 1]


def test_to_python_handles_nested_proxies():
    value = JsProxy({"a": [JsProxy({"b": JsNull()})], "c": 1})
    assert to_python(value) == {"a": [{"b": None}], "c": 1}
