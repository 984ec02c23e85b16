"""The project's own request and response types, shared by both runtime adapters."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from core.errors import ApiError

MAX_BODY_BYTES = 64 * 1024
# No request schema nests beyond a few levels. The parsers recurse once per level (json's scanner, pydantic):
# 1,000 levels (2 KB) exhaust CPython's recursion limit, and in workerd 5,000 hung the isolate for good.
MAX_JSON_DEPTH = 32
# A JSON string (escapes included; an unterminated one runs to the end): brackets inside strings are text.
_JSON_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"?', re.DOTALL)
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")


def json_too_deep(text: str, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether JSON text nests arrays/objects more than `limit` levels, found without parsing it."""
    if text.count("[") + text.count("{") <= limit:
        return False  # the common case: too few brackets to nest that deep, no scan needed
    # The regexes run in C and leave only the brackets outside strings; the loop then walks those alone.
    depth = 0
    for bracket in _NOT_BRACKET.sub("", _JSON_STRING.sub("", text)):
        if bracket in "[{":
            depth += 1
            if depth > limit:
                return True
        else:
            # Never below zero: a stray closer is malformed JSON, and must not hide nesting after it.
            depth = max(depth - 1, 0)
    return False


def _too_deep_error() -> ApiError:
    return ApiError(
        "E9004",
        f"Request body nests JSON deeper than {MAX_JSON_DEPTH} levels",
        {
            "fields": [
                {"field": "body", "message": f"nested deeper than {MAX_JSON_DEPTH} levels", "type": "json_depth"}
            ],
            "max_depth": MAX_JSON_DEPTH,
        },
    )


@dataclass
class Request:
    """An incoming HTTP request, independent of the runtime that received it."""

    method: str
    path: str
    query_string: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    client_ip: str = ""
    # The runtime could not deliver the body (stream broken or already used): refused before dispatch.
    body_unreadable: bool = False
    path_params: dict[str, str] = field(default_factory=dict)
    request_id: str = ""

    def __post_init__(self) -> None:
        self.method = self.method.upper()
        self.headers = {name.lower(): value for name, value in self.headers.items()}

    def header(self, name: str, default: str = "") -> str:
        return self.headers.get(name.lower(), default)

    @property
    def query(self) -> dict[str, str]:
        """Query parameters; a repeated name keeps its first value."""
        params: dict[str, str] = {}
        for name, value in parse_qsl(self.query_string, keep_blank_values=True):
            params.setdefault(name, value)
        return params

    def json(self) -> Any:
        """The body parsed as JSON; an empty body is an empty object."""
        if not self.body.strip():
            return {}
        content_type = self.header("content-type").split(";")[0].strip().lower()
        if content_type and content_type != "application/json" and not content_type.endswith("+json"):
            raise ApiError("E9013")
        try:
            text = self.body.decode("utf-8")
        except UnicodeDecodeError:
            raise ApiError("E9014") from None
        if json_too_deep(text):
            raise _too_deep_error()
        try:
            return json.loads(text)
        except ValueError:
            raise ApiError("E9014") from None
        except RecursionError:
            # Unreachable under the depth check; kept so a lower stack limit is still a 400, never a 500.
            raise _too_deep_error() from None

    def wants_json(self) -> bool:
        accept = self.header("accept").lower()
        return "application/json" in accept and "text/html" not in accept


@dataclass
class Response:
    """An outgoing HTTP response."""

    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def json(cls, data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
        body = json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
        return cls(status, body, {"content-type": "application/json", **(headers or {})})

    @classmethod
    def html(cls, text: str, status: int = 200, headers: dict[str, str] | None = None) -> Response:
        return cls(status, text.encode("utf-8"), {"content-type": "text/html; charset=utf-8", **(headers or {})})

    @classmethod
    def empty(cls, status: int = 204, headers: dict[str, str] | None = None) -> Response:
        return cls(status, b"", dict(headers or {}))

    @classmethod
    def error(cls, error: ApiError) -> Response:
        return cls.json(error.envelope(), error.status, error.headers)
