"""SQLite adapter with D1's semantics (batch = one transaction), used locally, in tests and benches."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

from db.port import (
    FIRST_UNCONSTRAINED,
    SESSION_CONSTRAINTS,
    ConstraintError,
    DatabaseError,
    QueryResult,
    Statement,
    check_params,
    newer_bookmark,
    writes,
)


def connect(path: str | Path) -> sqlite3.Connection:
    """Open a connection configured like D1: foreign keys on, WAL, waits instead of failing on locks."""
    connection = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False, timeout=30)
    connection.row_factory = sqlite3.Row
    connection.execute("PRAGMA foreign_keys = ON")
    connection.execute("PRAGMA busy_timeout = 30000")
    if str(path) != ":memory:":
        connection.execute("PRAGMA journal_mode = WAL")
        connection.execute("PRAGMA synchronous = NORMAL")
    return connection


def _translate(error: sqlite3.Error) -> DatabaseError:
    if isinstance(error, sqlite3.IntegrityError):
        return ConstraintError(str(error))
    return DatabaseError(str(error))


def format_bookmark(counter: int) -> str:
    """A D1-shaped bookmark for a write counter: same length and alphabet, so it sorts by age as D1's do."""
    return f"{counter >> 32:08x}-{counter & 0xFFFFFFFF:08x}-{0:08x}-{0:032x}"


class _Runner(Protocol):
    """What a statement runs through: the database itself, or one of its sessions."""

    async def round_trip(self) -> None: ...

    def run_single(self, statement: SqliteStatement) -> QueryResult: ...


def _own(statements: Sequence[Statement]) -> list[SqliteStatement]:
    """The statements as this adapter's own; one prepared by another database cannot join its transaction."""
    own: list[SqliteStatement] = []
    for statement in statements:
        if not isinstance(statement, SqliteStatement):
            raise DatabaseError(f"not a statement of this database: {type(statement).__name__}")
        own.append(statement)
    return own


def _first_wins(columns: list[str], row: tuple[Any, ...]) -> dict[str, Any]:
    record: dict[str, Any] = {}
    for name, value in zip(columns, row, strict=True):
        record.setdefault(name, value)
    return record


class SqliteStatement:
    """A prepared statement bound to a SqliteDatabase (or a session of it)."""

    def __init__(self, database: _Runner, sql: str, params: tuple[Any, ...] = ()) -> None:
        self._database = database
        self.sql = sql
        self.params = params

    def bind(self, *params: Any) -> SqliteStatement:
        return SqliteStatement(self._database, self.sql, check_params(params))

    def execute(self, connection: sqlite3.Connection) -> QueryResult:
        # Plain tuples zipped with the column names: what D1 answers (objects keyed by column), without building
        # a sqlite3.Row per row first.
        cursor = connection.cursor()
        cursor.row_factory = None
        cursor.execute(self.sql, self.params)
        fetched = cursor.fetchall()
        if fetched:
            columns = [column[0] for column in cursor.description]
            if len(set(columns)) == len(columns):
                rows = [dict(zip(columns, row, strict=True)) for row in fetched]
            else:  # a repeated name keeps its first column's value, as sqlite3.Row answered it
                rows = [_first_wins(columns, row) for row in fetched]
        else:
            rows = []
        changes = cursor.rowcount if cursor.rowcount > 0 else 0
        return QueryResult(rows, changes, cursor.lastrowid)

    async def first(self, column: str | None = None) -> Any:
        result = await self.all()
        if not result.results:
            return None
        row = result.results[0]
        return row[column] if column is not None else row

    async def all(self) -> QueryResult:
        await self._database.round_trip()
        return self._database.run_single(self)

    async def run(self) -> QueryResult:
        await self._database.round_trip()
        return self._database.run_single(self)


class SqliteDatabase:
    """One connection; a statement or batch runs to completion once started, like a D1 call.

    Each call first yields to the event loop, as a D1 call (a network round trip) does, so concurrent
    requests interleave between queries here the way they do in production: races show up locally.
    """

    def __init__(self, path: str | Path, *, latency_seconds: float = 0.0) -> None:
        self.path = str(path)
        self.connection = connect(path)
        # Optional simulated D1 round-trip time, so races between requests can be provoked on purpose.
        self.latency_seconds = latency_seconds

    async def round_trip(self) -> None:
        await asyncio.sleep(self.latency_seconds)

    def prepare(self, sql: str) -> SqliteStatement:
        return SqliteStatement(self, sql)

    def with_session(self, constraint_or_bookmark: str | None = None) -> SqliteSession:
        return SqliteSession(self, constraint_or_bookmark)

    def bookmark(self) -> str | None:
        # As D1's binding outside a session: every query goes to the primary and there is no bookmark.
        return None

    def current_bookmark(self) -> str:
        """The bookmark of the database as it is now: the rows this connection has changed, as a counter.

        Monotonic while the process lives (the one connection sees every write it makes); a bookmark from an
        earlier run may be ahead of it, which, as on D1, still answers (there is only the primary here).
        """
        return format_bookmark(self.connection.total_changes)

    def run_single(self, statement: SqliteStatement) -> QueryResult:
        try:
            return statement.execute(self.connection)
        except sqlite3.Error as error:
            raise _translate(error) from error

    async def batch(self, statements: Sequence[Statement]) -> list[QueryResult]:
        await self.round_trip()
        return self.run_batch(statements)

    def run_batch(self, statements: Sequence[Statement]) -> list[QueryResult]:
        """All statements in one transaction: all apply or none do, as in D1. A batch that writes takes the write
        lock up front (IMMEDIATE); one that only reads is a plain snapshot (DEFERRED), which takes no lock."""
        own = _own(statements)
        connection = self.connection
        begin = "BEGIN IMMEDIATE" if any(writes(statement) for statement in own) else "BEGIN"
        try:
            connection.execute(begin)
        except sqlite3.Error as error:
            raise _translate(error) from error
        try:
            results = [statement.execute(connection) for statement in own]
            connection.execute("COMMIT")
        except sqlite3.Error as error:
            connection.execute("ROLLBACK")
            raise _translate(error) from error
        except BaseException:
            connection.execute("ROLLBACK")
            raise
        return results

    def executescript(self, sql: str) -> None:
        """Run a multi-statement script (migrations) inside one transaction."""
        try:
            self.connection.executescript(f"BEGIN IMMEDIATE;\n{sql}\nCOMMIT;")
        except sqlite3.Error as error:
            if self.connection.in_transaction:
                self.connection.execute("ROLLBACK")
            raise _translate(error) from error

    def close(self) -> None:
        self.connection.close()


class SqliteSession:
    """A D1 session over the local database: same data (there are no replicas), D1's bookmark rules.

    Started from a constraint it has no bookmark until its first query; started from a bookmark it holds
    that one. After each query it keeps the newer of its bookmark and the database's, as D1's session does,
    so a bookmark ahead of the database (from an earlier run) is kept, and the query still answers.
    """

    def __init__(self, database: SqliteDatabase, constraint_or_bookmark: str | None = None) -> None:
        start = (constraint_or_bookmark or "").strip() or FIRST_UNCONSTRAINED
        self._database = database
        self.start = start
        self._bookmark: str | None = None if start in SESSION_CONSTRAINTS else start

    async def round_trip(self) -> None:
        await self._database.round_trip()

    def prepare(self, sql: str) -> SqliteStatement:
        return SqliteStatement(self, sql)

    def run_single(self, statement: SqliteStatement) -> QueryResult:
        try:
            return self._database.run_single(statement)
        finally:
            self._observe()

    async def batch(self, statements: Sequence[Statement]) -> list[QueryResult]:
        await self.round_trip()
        try:
            return self._database.run_batch(statements)
        finally:
            self._observe()

    def with_session(self, constraint_or_bookmark: str | None = None) -> SqliteSession:
        return SqliteSession(self._database, constraint_or_bookmark)

    def bookmark(self) -> str | None:
        return self._bookmark

    def _observe(self) -> None:
        # Like D1, a failed query still reports the state it saw.
        self._bookmark = newer_bookmark(self._bookmark, self._database.current_bookmark())
