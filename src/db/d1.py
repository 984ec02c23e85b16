"""D1 adapter: wraps the Workers JS binding and converts its JS results into plain Python."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from db.port import FIRST_UNCONSTRAINED, ConstraintError, DatabaseError, QueryResult, Statement, check_params


def _js_null() -> Any:
    # D1 rejects `undefined`, which is what Pyodide makes of None; JS null must be passed explicitly.
    try:
        from pyodide.ffi import jsnull  # type: ignore[import-not-found]
    except ImportError:
        try:
            from js import JSON  # type: ignore[import-not-found]

            return JSON.parse("null")
        except ImportError:
            return None
    return jsnull


def _to_js_list(items: list[Any]) -> Any:
    try:
        from pyodide.ffi import to_js  # type: ignore[import-not-found]
    except ImportError:
        return items
    return to_js(items)


def to_python(value: Any) -> Any:
    """Turn a JS proxy (or nested structure of them) into dicts, lists and scalars; jsnull → None."""
    if hasattr(value, "to_py"):
        value = value.to_py()
    if isinstance(value, dict):
        return {str(key): to_python(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [to_python(item) for item in value]
    if value is None or isinstance(value, bool | int | float | str | bytes):
        return value
    if type(value).__name__ in {"JsNull", "JsUndefined"} or str(value) in {"null", "undefined"}:
        return None
    return value


def _result(raw: Any) -> QueryResult:
    data = to_python(raw) or {}
    meta = data.get("meta") or {}
    return QueryResult(
        results=[dict(row) for row in (data.get("results") or [])],
        changes=int(meta.get("changes") or 0),
        last_row_id=meta.get("last_row_id"),
    )


def _translate(error: Exception) -> DatabaseError:
    text = str(error)
    if "constraint" in text.lower():
        return ConstraintError(text)
    return DatabaseError(text)


class D1Statement:
    """A statement of the JS binding, bound lazily so the parameters can be checked first."""

    def __init__(self, js_statement: Any, sql: str, params: tuple[Any, ...] = ()) -> None:
        self._js_statement = js_statement
        self.sql = sql
        self.params = params

    def bind(self, *params: Any) -> D1Statement:
        return D1Statement(self._js_statement, self.sql, check_params(params))

    def js(self) -> Any:
        null = _js_null()
        values = [null if value is None else value for value in self.params]
        return self._js_statement.bind(*values) if values else self._js_statement

    async def first(self, column: str | None = None) -> Any:
        result = await self.all()
        if not result.results:
            return None
        row = result.results[0]
        return row.get(column) if column is not None else row

    async def all(self) -> QueryResult:
        try:
            return _result(await self.js().all())
        except Exception as error:
            raise _translate(error) from error

    async def run(self) -> QueryResult:
        try:
            return _result(await self.js().run())
        except Exception as error:
            raise _translate(error) from error


class MissingBinding(DatabaseError):
    """The Worker has no D1 binding under the expected name (a deploy without `[[d1_databases]]`)."""


class D1Database:
    """The `Database` port over `env.TATTLEHASH_DB`; a missing binding fails each query, not the import.

    With `session` (what the binding's `withSession()` returned) queries go through that D1 session, which
    may read from a replica; without one they go to the primary, as the plain binding does.
    """

    def __init__(self, binding: Any, session: Any = None) -> None:
        self._binding = binding
        self._session = session

    def _target(self) -> Any:
        if self._binding is None:
            raise MissingBinding("the D1 binding is not configured")
        return self._session if self._session is not None else self._binding

    def prepare(self, sql: str) -> D1Statement:
        return D1Statement(self._target().prepare(sql), sql)

    async def batch(self, statements: Sequence[Statement]) -> list[QueryResult]:
        target = self._target()
        js_statements: list[Any] = []
        for statement in statements:
            if not isinstance(statement, D1Statement):
                raise DatabaseError(f"not a statement of this database: {type(statement).__name__}")
            js_statements.append(statement.js())
        try:
            raw = await target.batch(_to_js_list(js_statements))
        except Exception as error:
            raise _translate(error) from error
        # Iterating a JS array proxy yields its items; each is converted by _result.
        return [_result(item) for item in raw]

    def with_session(self, constraint_or_bookmark: str | None = None) -> D1Database:
        """A D1 session (`env.DB.withSession(...)`) starting from a constraint or a bookmark."""
        if self._binding is None:
            return D1Database(None)
        start = (constraint_or_bookmark or "").strip() or FIRST_UNCONSTRAINED
        return D1Database(self._binding, self._binding.withSession(start))

    def bookmark(self) -> str | None:
        """The session's latest bookmark; None outside a session or before its first query.

        Observed in workerd: `getBookmark()` returns JS null (pyodide's `jsnull`, not None) until a query
        has answered when the session began with a constraint, then a string.
        """
        if self._session is None:
            return None
        value = self._session.getBookmark()
        return value if isinstance(value, str) and value else None
