"""Env: the Worker's vars and secrets (locally `[vars]` + `.dev.vars`), read with typed accessors."""

from __future__ import annotations

import builtins
from typing import Protocol

from core import flags
from core.errors import ApiError

MIN_HMAC_SECRET_LENGTH = 32


class VarSource(Protocol):
    """Where values come from: a dict locally, the runtime's env wrapper on Workers (read by name only)."""

    def get(self, name: str, /) -> str | None: ...


class Env:
    """Read-only configuration; secrets are only ever read here, never echoed."""

    def __init__(self, values: VarSource | None = None) -> None:
        self._values: VarSource = values if values is not None else {}

    def get(self, name: str, default: str = "") -> str:
        value = self._values.get(name)
        if value is None:
            return default
        return str(value)

    def int(self, name: str, default: int) -> int:
        raw = self.get(name).strip()
        try:
            return int(raw) if raw else default
        except ValueError:
            return default

    def bool(self, name: str, *, default: bool = False) -> bool:
        raw = self.get(name).strip()
        if not raw:
            return default
        return flags.rollout_percent(raw) >= 100

    # builtins.*: inside the class, `bool` and `int` name the methods above.
    def flag(self, name: str, subject: str = "") -> builtins.bool:
        return flags.is_enabled(name, self.get(name) or None, subject)

    def secret(self, name: str, *, min_length: builtins.int = 1) -> str:
        """A required secret, or a clear 500 naming the variable (never its value)."""
        value = self.get(name)
        if len(value) < min_length:
            problem = "is not configured" if not value else f"must be at least {min_length} characters"
            raise ApiError("E9001", f"Server misconfigured: {name} {problem}", {"variable": name})
        return value

    def hmac_secret(self) -> str:
        return self.secret("HMAC_SECRET", min_length=MIN_HMAC_SECRET_LENGTH)
