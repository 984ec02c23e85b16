"""An in-process HTTP client that drives the real ASGI adapter, so tests exercise the whole pipeline."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from local.asgi import AsgiAdapter


@dataclass
class ApiResponse:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def text(self) -> str:
        return self.body.decode()

    @property
    def error_code(self) -> str | None:
        try:
            return self.json()["error"]["code"]
        except (ValueError, KeyError, TypeError):
            return None


@dataclass
class ApiClient:
    adapter: AsgiAdapter
    client_ip: str = "203.0.113.7"
    default_headers: dict[str, str] = field(default_factory=dict)

    async def request(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
        token: str | None = None,
        query: dict[str, Any] | None = None,
    ) -> ApiResponse:
        all_headers = {**self.default_headers, **(headers or {})}
        if json_body is not None:
            body = json.dumps(json_body).encode()
            all_headers.setdefault("content-type", "application/json")
        if token is not None:
            all_headers["authorization"] = f"Bearer {token}"
        scope = {
            "type": "http",
            "method": method.upper(),
            "path": path,
            "query_string": urlencode(query or {}).encode(),
            "headers": [(key.lower().encode(), value.encode()) for key, value in all_headers.items()],
            "client": (self.client_ip, 50000),
        }
        chunks = [body or b""]
        sent: list[dict[str, Any]] = []

        async def receive() -> dict[str, Any]:
            chunk = chunks.pop(0) if chunks else b""
            return {"type": "http.request", "body": chunk, "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        await self.adapter(scope, receive, send)
        start = next(message for message in sent if message["type"] == "http.response.start")
        payload = b"".join(message.get("body", b"") for message in sent if message["type"] == "http.response.body")
        response_headers = {key.decode(): value.decode() for key, value in start["headers"]}
        return ApiResponse(start["status"], response_headers, payload)

    async def get(self, path: str, **kwargs: Any) -> ApiResponse:
        return await self.request("GET", path, **kwargs)

    async def post(self, path: str, json: Any = None, **kwargs: Any) -> ApiResponse:
        return await self.request("POST", path, json_body=json if json is not None else {}, **kwargs)

    async def patch(self, path: str, json: Any = None, **kwargs: Any) -> ApiResponse:
        return await self.request("PATCH", path, json_body=json if json is not None else {}, **kwargs)

    async def delete(self, path: str, **kwargs: Any) -> ApiResponse:
        return await self.request("DELETE", path, **kwargs)
