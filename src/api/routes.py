"""The route table: every endpoint, the flag and auth it needs, and the models it speaks."""

from __future__ import annotations

import json
from functools import lru_cache

from accounts import handlers as accounts
from api import system
from core.app import App
from core.context import RequestContext
from core.http import Request, Response
from core.routing import Route


@lru_cache(maxsize=1)
def _openapi_body() -> bytes:
    from core.openapi import build_document

    document = build_document(ROUTES, title="TattleHash Gatekeeper API", version=system.VERSION)
    return json.dumps(document, separators=(",", ":")).encode()


async def openapi(request: Request, ctx: RequestContext) -> Response:
    return Response(200, _openapi_body(), {"content-type": "application/json"})


ROUTES: list[Route] = [
    Route("GET", "/health", system.health, "Service and database health", "system", response=system.Health),
    Route("GET", "/openapi.json", openapi, "This OpenAPI 3.1 document", "system", include_in_schema=False),
    Route(
        "POST",
        "/admin/api-keys",
        accounts.create_api_key,
        "Issue an API key (operators)",
        "admin",
        auth="admin",
        body=accounts.ApiKeyCreate,
        response=accounts.ApiKeyCreated,
        status=201,
        errors=("E9008",),
    ),
    Route(
        "GET",
        "/me",
        accounts.get_me,
        "The caller's profile",
        "accounts",
        auth="user",
        response=accounts.Profile,
    ),
    Route(
        "PATCH",
        "/me",
        accounts.patch_me,
        "Edit the caller's profile",
        "accounts",
        auth="user",
        body=accounts.ProfilePatch,
        response=accounts.Profile,
    ),
]


def build_app() -> App:
    return App(ROUTES)
