"""The route table: method + path pattern with {params} → handler and what the route requires."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from core.errors import ApiError
from core.http import Request, Response

if TYPE_CHECKING:
    from core.context import RequestContext

Handler = Callable[[Request, "RequestContext"], Awaitable[Response]]
# "any": a user or the admin token (reads and moderation); "user": acts for a user, so the admin token is refused.
AuthRequirement = Literal["none", "optional", "user", "any", "admin"]
_PARAM = re.compile(r"\{([a-z_]+)\}")


@dataclass(frozen=True)
class Route:
    """One endpoint: what it needs (flag, auth, body model) and who handles it."""

    method: str
    path: str
    handler: Handler
    summary: str = ""
    tag: str = "general"
    flag: str | None = None
    auth: AuthRequirement = "none"
    body: type | None = None
    response: type | None = None
    status: int = 200
    rate_limit: str | None = None
    errors: tuple[str, ...] = ()
    query: tuple[tuple[str, str], ...] = ()
    include_in_schema: bool = True
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "method", self.method.upper())

    @property
    def pattern(self) -> re.Pattern[str]:
        return _compile(self.path)


def _compile(path: str) -> re.Pattern[str]:
    parts = _PARAM.split(path)
    # split() alternates literal text and parameter names: escape the text, capture the names.
    regex = "".join(re.escape(part) if index % 2 == 0 else f"(?P<{part}>[^/]+)" for index, part in enumerate(parts))
    return re.compile(f"^{regex}$")


@dataclass
class Match:
    route: Route
    params: dict[str, str]


class Router:
    """Finds a request's route: 404 when no path matches, 405 with Allow when only the method is wrong."""

    def __init__(self, routes: Sequence[Route]) -> None:
        self.routes = list(routes)
        self._compiled = [(route, _compile(route.path)) for route in self.routes]
        self._static = {(route.method, route.path): route for route in self.routes if "{" not in route.path}

    def match(self, method: str, path: str) -> Match:
        static = self._static.get((method, path))
        if static is not None:
            return Match(static, {})
        allowed: list[str] = []
        for route, pattern in self._compiled:
            found = pattern.match(path)
            if found is None:
                continue
            if route.method == method:
                return Match(route, found.groupdict())
            allowed.append(route.method)
        if allowed:
            if "GET" in allowed and method == "HEAD":
                return self.match("GET", path)
            allow = ", ".join(sorted({*allowed, "OPTIONS"}))
            raise ApiError("E9011", f"Method {method} not allowed", {"allow": allow}, headers={"allow": allow})
        raise ApiError("E9008", "No such route")

    def allowed_methods(self, path: str) -> list[str]:
        return sorted({route.method for route, pattern in self._compiled if pattern.match(path)})
