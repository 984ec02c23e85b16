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
