"""The project's own request and response types, shared by both runtime adapters."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from core.errors import ApiError

MAX_BODY_BYTES = 64 * 1024


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
            return json.loads(self.body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            raise ApiError("E9014") from None

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
