"""OpenAPI 3.1 generated from the route table and the same pydantic models that validate requests."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from core.errors import ERRORS
from core.routing import Route
from core.schemas import ErrorEnvelope

_REF = "#/components/schemas/{model}"
_PARAM = re.compile(r"\{([a-z_]+)\}")
_COMMON_ERRORS = ("E9001", "E9004", "E9012", "E9013", "E9014")


def _schema(model: type, components: dict[str, Any]) -> dict[str, Any]:
    schema = model.model_json_schema(ref_template=_REF)  # type: ignore[attr-defined]
    for name, definition in schema.pop("$defs", {}).items():
        components[name] = definition
    components[model.__name__] = schema
    return {"$ref": _REF.format(model=model.__name__)}


def _error_responses(route: Route) -> dict[str, Any]:
    codes = list(route.errors) + list(_COMMON_ERRORS)
    if route.auth in {"user", "any", "admin", "optional"}:
        codes += ["E9005", "E9006", "E9007"]
    if route.flag:
        codes.append("E9010")
    if route.rate_limit:
        codes.append("E9003")
    by_status: dict[int, list[str]] = {}
    for code in dict.fromkeys(codes):
        by_status.setdefault(ERRORS[code].status, []).append(code)
    return {
        str(status): {
            "description": " · ".join(f"{code} {ERRORS[code].message}" for code in sorted(found)),
            "content": {"application/json": {"schema": {"$ref": _REF.format(model="ErrorEnvelope")}}},
        }
        for status, found in sorted(by_status.items())
    }


def _operation(route: Route, components: dict[str, Any]) -> dict[str, Any]:
    operation: dict[str, Any] = {
        "operationId": f"{route.method.lower()}_{re.sub(r'[^a-z0-9]+', '_', route.path.lower()).strip('_')}",
        "summary": route.summary or route.path,
        "tags": [route.tag],
    }
    parameters = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
        for name in _PARAM.findall(route.path)
    ]
    parameters += [
        {"name": name, "in": "query", "required": False, "schema": {"type": "string"}, "description": text}
        for name, text in route.query
    ]
    if parameters:
        operation["parameters"] = parameters
    if route.body is not None:
        operation["requestBody"] = {
            # An empty body reads as {} (core.http.Request.json): only a model with required fields needs one.
            "required": any(field.is_required() for field in route.body.model_fields.values()),  # type: ignore[attr-defined]
            "content": {"application/json": {"schema": _schema(route.body, components)}},
        }
    success: dict[str, Any] = {"description": "Success"}
    if route.response is not None:
        success["content"] = {"application/json": {"schema": _schema(route.response, components)}}
    operation["responses"] = {str(route.status): success, **_error_responses(route)}
    if route.auth in {"user", "any", "admin"}:
        operation["security"] = [{"bearer": []}]
    elif route.auth == "optional":
        operation["security"] = [{"bearer": []}, {}]
    return operation


def build_document(routes: Sequence[Route], *, title: str, version: str, server_url: str = "") -> dict[str, Any]:
    components: dict[str, Any] = {}
    _schema(ErrorEnvelope, components)
    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        if route.include_in_schema:
            paths.setdefault(route.path, {})[route.method.lower()] = _operation(route, components)
    document: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {"title": title, "version": version},
        "paths": paths,
        "components": {
            "schemas": dict(sorted(components.items())),
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "API key (thk_…), wallet session (ths_…) or admin token",
                }
            },
        },
    }
    if server_url:
        document["servers"] = [{"url": server_url}]
    return document
