"""The Database port: the subset of the D1 API the app uses (prepare/bind/first/all/run/batch)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

# D1 passes numbers through JavaScript, so integers beyond 2^53 lose precision; amounts are TEXT.
MAX_SAFE_INTEGER = 2**53 - 1
# D1 refuses statements with more bound parameters than this.
MAX_BOUND_PARAMETERS = 100

Row = dict[str, Any]


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

    def bind(self, *params: Any) -> Statement: ...

    async def first(self, column: str | None = None) -> Any: ...

    async def all(self) -> QueryResult: ...

    async def run(self) -> QueryResult: ...


class Database(Protocol):
    """A D1-shaped database: batch() runs its statements as one transaction."""

    def prepare(self, sql: str) -> Statement: ...

    async def batch(self, statements: Sequence[Statement]) -> list[QueryResult]: ...


def check_params(params: Sequence[Any]) -> tuple[Any, ...]:
    """Refuse what D1 would refuse or silently corrupt, so local runs fail the way production would."""
    if len(params) > MAX_BOUND_PARAMETERS:
        raise DatabaseError(f"too many bound parameters: {len(params)} > {MAX_BOUND_PARAMETERS}")
    checked: list[Any] = []
    for value in params:
        if isinstance(value, bool):
            value = int(value)
        elif isinstance(value, int) and abs(value) > MAX_SAFE_INTEGER:
            raise DatabaseError("integer parameter beyond 2^53; store big numbers as TEXT")
        elif value is not None and not isinstance(value, int | float | str | bytes):
            raise DatabaseError(f"unsupported parameter type: {type(value).__name__}")
        checked.append(value)
    return tuple(checked)
