"""D1 adapter: wraps the Workers JS binding and converts its JS results into plain Python."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from db.port import ConstraintError, DatabaseError, QueryResult, check_params


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

    def __init__(self, js_statement: Any, params: tuple[Any, ...] = ()) -> None:
        self._js_statement = js_statement
        self.params = params

    def bind(self, *params: Any) -> D1Statement:
        return D1Statement(self._js_statement, check_params(params))

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
    """The `Database` port over `env.TATTLEHASH_DB`; a missing binding fails each query, not the import."""

    def __init__(self, binding: Any) -> None:
        self._binding = binding

    def prepare(self, sql: str) -> D1Statement:
        if self._binding is None:
            raise MissingBinding("the D1 binding is not configured")
        return D1Statement(self._binding.prepare(sql))

    async def batch(self, statements: Sequence[D1Statement]) -> list[QueryResult]:
        if self._binding is None:
            raise MissingBinding("the D1 binding is not configured")
        try:
            raw = await self._binding.batch(_to_js_list([statement.js() for statement in statements]))
        except Exception as error:
            raise _translate(error) from error
        # Iterating a JS array proxy yields its items; each is converted by _result.
        return [_result(item) for item in raw]
