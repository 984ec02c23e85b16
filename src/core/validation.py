"""Request body validation with pydantic, turned into 400 E9004 that names each bad field."""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from core.errors import ApiError

ModelT = TypeVar("ModelT", bound=BaseModel)


def field_errors(error: ValidationError) -> list[dict[str, str]]:
    """Field paths and messages only: the rejected input is never echoed back."""
    fields = []
    for item in error.errors(include_url=False, include_input=False, include_context=False):
        path = ".".join(str(part) for part in item["loc"]) or "body"
        message = item["msg"].removeprefix("Value error, ")
        fields.append({"field": path, "message": message, "type": item["type"]})
    return fields


def validate_body(model: type[ModelT], data: Any) -> ModelT:
    if not isinstance(data, dict):
        raise ApiError(
            "E9004",
            "Request body must be a JSON object",
            {"fields": [{"field": "body", "message": "expected a JSON object", "type": "dict_type"}]},
        )
    try:
        return model.model_validate(data)
    except ValidationError as error:
        raise ApiError("E9004", details={"fields": field_errors(error)}) from None


def page_limit(raw: str, *, maximum: int) -> int:
    """A `limit` query parameter: ASCII digits only (str.isdigit() also takes "²", which int() refuses)."""
    if not (raw.isascii() and raw.isdigit()) or not 1 <= int(raw) <= maximum:
        raise ApiError(
            "E9004", details={"fields": [{"field": "limit", "message": f"must be 1 to {maximum}", "type": "range"}]}
        )
    return int(raw)
