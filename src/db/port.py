"""The Database port: the subset of the D1 API the app uses (prepare/bind/first/all/run/batch, sessions)."""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

# D1 passes numbers through JavaScript, so integers beyond 2^53 lose precision; amounts are TEXT.
MAX_SAFE_INTEGER = 2**53 - 1
# D1 refuses statements with more bound parameters than this.
MAX_BOUND_PARAMETERS = 100

Row = dict[str, Any]

# D1 Sessions API (read replication): a session starts from one of these constraints or from a bookmark.
# "first-primary": the first query goes to the primary (the latest state); "first-unconstrained": to any
# replica. Either way the session's later queries see at least what its earlier ones saw.
FIRST_PRIMARY = "first-primary"
FIRST_UNCONSTRAINED = "first-unconstrained"
SESSION_CONSTRAINTS = frozenset({FIRST_PRIMARY, FIRST_UNCONSTRAINED})
# The shape of a D1 bookmark as workerd's D1 returns it (observed in wrangler 4.86 / workerd 1.20260426.1:
# "00000000-00000001-00000000-00000000000000000000000000000000"); bookmarks sort lexicographically by age.
BOOKMARK_PATTERN = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{8}-[0-9a-f]{8}-[0-9a-f]{32}$")


class DatabaseError(Exception):
    """A statement or batch failed; the whole batch was rolled back."""


class ConstraintError(DatabaseError):
    """A UNIQUE/CHECK/FOREIGN KEY constraint refused the write."""


@dataclass
class QueryResult:
    """What D1 returns for all()/run(): rows plus write metadata."""

    results: list[Row] = field(default_factory=list)
    changes: int = 0
    last_row_id: int | None = None


class Statement(Protocol):
    """A prepared statement; bind() returns a statement with the parameters attached."""

    # The SQL text as prepared: what tells a write from a read (see writes()), and names it in traces.
    sql: str

    def bind(self, *params: Any) -> Statement: ...

    async def first(self, column: str | None = None) -> Any: ...

    async def all(self) -> QueryResult: ...

    async def run(self) -> QueryResult: ...


@runtime_checkable
class Database(Protocol):
    """A D1-shaped database: batch() runs its statements as one transaction.

    with_session() opens a D1 session (read replication): its queries may be served by a replica that is at
    least as new as the bookmark it started from (or, with a constraint, as its own earlier queries), and
    bookmark() is the newest bookmark the session has seen, to hand to the next request. The database
    itself (no session) always reads the primary and has no bookmark.
    """

    def prepare(self, sql: str) -> Statement: ...

    async def batch(self, statements: Sequence[Statement]) -> list[QueryResult]: ...

    def with_session(self, constraint_or_bookmark: str | None = None) -> Database: ...

    def bookmark(self) -> str | None: ...


_WRITE_VERBS = ("INSERT", "UPDATE", "DELETE", "REPLACE")


def writes(statement: Statement) -> bool:
    """Whether the statement changes data: its SQL starts with a write verb (no statement here starts with WITH)."""
    return _writes(statement.sql)


@functools.lru_cache(maxsize=1024)
def _writes(sql: str) -> bool:
    # Per SQL text, not per call: the same fixed statements run on every request, some of them kilobytes long.
    return sql.lstrip().upper().startswith(_WRITE_VERBS)


async def select_in(db: Database, sql: str, values: Iterable[Any]) -> list[Row]:
    """Rows of `sql` (fixed SQL with one `{marks}` placeholder for an IN list) for every distinct value, in one
    batch (one round trip): one statement per MAX_BOUND_PARAMETERS values, inside D1's parameter limit."""
    ids = sorted(set(values))
    if not ids:
        return []
    statements = []
    for start in range(0, len(ids), MAX_BOUND_PARAMETERS):
        chunk = ids[start : start + MAX_BOUND_PARAMETERS]
        statements.append(db.prepare(sql.format(marks=", ".join("?" for _ in chunk))).bind(*chunk))
    return [row for result in await db.batch(statements) for row in result.results]


def is_session_start(value: str) -> bool:
    """Whether `value` is something a session may start from: a constraint or a well-formed bookmark."""
    return value in SESSION_CONSTRAINTS or BOOKMARK_PATTERN.match(value) is not None


def newer_bookmark(current: str | None, candidate: str | None) -> str | None:
    """The later of two bookmarks, as D1's session keeps it: bookmarks compare as strings, newest wins."""
    if not candidate:
        return current
    if current is None or current < candidate:
        return candidate
    return current


def check_params(params: Sequence[Any]) -> tuple[Any, ...]:
    """Refuse what D1 would refuse or silently corrupt, so local runs fail the way production would."""
    if len(params) > MAX_BOUND_PARAMETERS:
        raise DatabaseError(f"too many bound parameters: {len(params)} > {MAX_BOUND_PARAMETERS}")
    checked: list[Any] = []
    for value in params:
        if value is None or type(value) is str:  # most values: nothing to check
            checked.append(value)
            continue
        if isinstance(value, bool):
            value = int(value)
        elif isinstance(value, int) and abs(value) > MAX_SAFE_INTEGER:
            raise DatabaseError("integer parameter beyond 2^53; store big numbers as TEXT")
        elif value is not None and not isinstance(value, int | float | str | bytes):
            raise DatabaseError(f"unsupported parameter type: {type(value).__name__}")
        checked.append(value)
    return tuple(checked)
