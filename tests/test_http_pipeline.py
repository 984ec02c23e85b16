"""The shared request pipeline: routing errors, body limits, content types, validation, 500s, ids, logs, CORS."""

from __future__ import annotations

import json

import pytest
from pydantic import Field

from accounts.credentials import resolve_principal
from api.routes import ROUTES
from core.app import App
from core.http import Response
from core.routing import Route
from core.schemas import StrictModel
from local.asgi import AsgiAdapter
from tests.conftest import ADMIN_TOKEN, HMAC_SECRET
from tests.support.client import ApiClient


class EchoBody(StrictModel):
    name: str = Field(min_length=1, max_length=10)
    count: int = Field(ge=0)


async def echo(request, ctx):
    return Response.json(ctx.body.model_dump())


async def explode(request, ctx):
    raise RuntimeError(f"boom with secret {HMAC_SECRET} and SELECT * FROM users")


@pytest.fixture
def test_client(services):
    extra = [
        Route("POST", "/test/echo", echo, body=EchoBody),
        Route("GET", "/test/explode", explode),
        Route("GET", "/test/items/{item_id}/parts/{part_id}", lambda r, c: _params(r)),
    ]
    return ApiClient(AsgiAdapter(App([*ROUTES, *extra], authenticate=resolve_principal), services))


async def _params(request):
    return Response.json(request.path_params)


async def test_unknown_route_is_404_envelope(client):
    response = await client.get("/nope")
    assert response.status == 404
    assert response.json() == {"error": {"code": "E9008", "message": "No such route", "details": {}}}


async def test_wrong_method_is_405_with_allow(client):
    response = await client.request("DELETE", "/health")
    assert response.status == 405
    assert response.error_code == "E9011"
    assert response.headers["allow"] == "GET, OPTIONS"


async def test_path_parameters(test_client):
    response = await test_client.get("/test/items/abc/parts/42")
    assert response.json() == {"item_id": "abc", "part_id": "42"}


async def test_body_over_64_kib_is_413(test_client):
    body = json.dumps({"name": "x" * (64 * 1024), "count": 1}).encode()
    response = await test_client.request("POST", "/test/echo", body=body, headers={"content-type": "application/json"})
    assert response.status == 413
    assert response.error_code == "E9012"


async def test_non_json_content_type_is_415(test_client):
    response = await test_client.request(
        "POST", "/test/echo", body=b"name=a", headers={"content-type": "application/x-www-form-urlencoded"}
    )
    assert response.status == 415
    assert response.error_code == "E9013"


async def test_malformed_json_is_400(test_client):
    response = await test_client.request(
        "POST", "/test/echo", body=b'{"name": "a",', headers={"content-type": "application/json"}
    )
    assert response.status == 400
    assert response.error_code == "E9014"


async def test_validation_names_each_bad_field_without_echoing_input(test_client):
    response = await test_client.post("/test/echo", json={"name": "far-too-long-name", "count": -1, "extra": "x"})
    assert response.status == 400
    error = response.json()["error"]
    assert error["code"] == "E9004"
    fields = {item["field"] for item in error["details"]["fields"]}
    assert fields == {"name", "count", "extra"}
    assert "far-too-long-name" not in response.text


async def test_non_object_body_is_validation_error(test_client):
    response = await test_client.post("/test/echo", json=[1, 2])
    assert response.status == 400
    assert response.error_code == "E9004"


async def test_valid_body_reaches_handler(test_client):
    response = await test_client.post("/test/echo", json={"name": "ok", "count": 3})
    assert response.status == 200
    assert response.json() == {"name": "ok", "count": 3}


async def test_unexpected_exception_is_500_with_request_id_and_nothing_internal(test_client, log_sink):
    response = await test_client.get("/test/explode", headers={"x-request-id": "req-123"})
    assert response.status == 500
    assert response.json() == {
        "error": {"code": "E9001", "message": "Internal error", "details": {"request_id": "req-123"}}
    }
    assert HMAC_SECRET not in "\n".join(log_sink.lines)
    assert "SELECT" not in response.text
    assert any(record["event"] == "unhandled_exception" for record in log_sink.records())
    # and the server keeps serving
    assert (await test_client.get("/health")).status == 200


async def test_request_id_echoed_or_generated(client):
    assert (await client.get("/health", headers={"x-request-id": "abc-1"})).headers["x-request-id"] == "abc-1"
    generated = (await client.get("/health")).headers["x-request-id"]
    assert len(generated) == 36
    # Unsafe ids (header injection, absurd length) are replaced, not echoed.
    assert (await client.get("/health", headers={"x-request-id": "a" * 500})).headers["x-request-id"] != "a" * 500


async def test_one_json_log_line_per_request(client, log_sink):
    await client.get("/health", headers={"x-request-id": "log-1"})
    await client.get("/nope", headers={"x-request-id": "log-2"})
    requests = [record for record in log_sink.records() if record["event"] == "request"]
    assert [(record["request_id"], record["route"], record["status"]) for record in requests] == [
        ("log-1", "/health", 200),
        ("log-2", "-", 404),
    ]
    assert all(isinstance(record["duration_ms"], float) for record in requests)


async def test_cors_preflight_and_simple_request(client, env_vars):
    preflight = await client.request(
        "OPTIONS", "/me", headers={"origin": "https://app.example", "access-control-request-method": "PATCH"}
    )
    assert preflight.status == 204
    assert preflight.headers["access-control-allow-origin"] == "*"
    assert "PATCH" in preflight.headers["access-control-allow-methods"]
    assert "authorization" in preflight.headers["access-control-allow-headers"]
    assert "access-control-allow-credentials" not in preflight.headers
    simple = await client.get("/health", headers={"origin": "https://app.example"})
    assert simple.headers["access-control-allow-origin"] == "*"


async def test_cors_allow_list(client, env_vars):
    env_vars["CORS_ALLOW_ORIGINS"] = "https://good.example, https://other.example"
    good = await client.get("/health", headers={"origin": "https://good.example"})
    assert good.headers["access-control-allow-origin"] == "https://good.example"
    assert good.headers["vary"] == "Origin"
    bad = await client.get("/health", headers={"origin": "https://evil.example"})
    assert "access-control-allow-origin" not in bad.headers
    bad_preflight = await client.request(
        "OPTIONS", "/health", headers={"origin": "https://evil.example", "access-control-request-method": "GET"}
    )
    assert "access-control-allow-methods" not in bad_preflight.headers


async def test_head_returns_no_body(client):
    response = await client.request("HEAD", "/health")
    assert response.status == 200
    assert response.body == b""


async def test_health_503_when_database_unreachable(client, services):
    services.db.close()
    response = await client.get("/health")
    assert response.status == 503
    assert response.json()["database"] == "error"


async def test_admin_token_is_not_accepted_as_user(client):
    response = await client.get("/me", token=ADMIN_TOKEN)
    assert response.status == 403
    assert response.error_code == "E9007"
