"""SQLite adapter with D1's semantics (batch = one transaction), used locally, in tests and benches."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from db.port import ConstraintError, DatabaseError, QueryResult, check_params


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


class SqliteStatement:
    """A prepared statement bound to a SqliteDatabase."""

    def __init__(self, database: SqliteDatabase, sql: str, params: tuple[Any, ...] = ()) -> None:
        self._database = database
        self.sql = sql
        self.params = params

    def bind(self, *params: Any) -> SqliteStatement:
        return SqliteStatement(self._database, self.sql, check_params(params))

    def execute(self, connection: sqlite3.Connection) -> QueryResult:
        cursor = connection.execute(self.sql, self.params)
        rows = [dict(row) for row in cursor.fetchall()]
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

    def run_single(self, statement: SqliteStatement) -> QueryResult:
        try:
            return statement.execute(self.connection)
        except sqlite3.Error as error:
            raise _translate(error) from error

    async def batch(self, statements: Sequence[SqliteStatement]) -> list[QueryResult]:
        await self.round_trip()
        return self.run_batch(statements)

    def run_batch(self, statements: Sequence[SqliteStatement]) -> list[QueryResult]:
        """All statements in one IMMEDIATE transaction: all apply or none do, as in D1."""
        connection = self.connection
        try:
            connection.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as error:
            raise _translate(error) from error
        try:
            results = [statement.execute(connection) for statement in statements]
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
