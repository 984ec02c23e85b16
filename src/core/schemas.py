"""Shared pydantic building blocks: strict base model, common field types, the error envelope."""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]{2,}$")
_E164 = re.compile(r"^\+[1-9]\d{6,14}$")


class StrictModel(BaseModel):
    """Request bodies: unknown fields are refused so typos don't pass silently."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class OutModel(BaseModel):
    """Response bodies."""

    model_config = ConfigDict(extra="forbid")


def _email(value: str) -> str:
    if not _EMAIL.match(value) or len(value) > 254:
        raise ValueError("must be an email address")
    return value.lower()


def _e164(value: str) -> str:
    if not _E164.match(value):
        raise ValueError("must be an E.164 phone number like +14155550123")
    return value


Email = Annotated[str, AfterValidator(_email)]
PhoneE164 = Annotated[str, AfterValidator(_e164)]
DisplayName = Annotated[str, Field(min_length=1, max_length=100)]


class ErrorBody(OutModel):
    code: str = Field(pattern=r"^E\d{4}$")
    message: str
    details: dict[str, Any] = Field(default_factory=dict)


class ErrorEnvelope(OutModel):
    error: ErrorBody
