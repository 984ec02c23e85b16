"""Crash injection for the local server: SIGKILL itself right before or after a chosen D1 batch commits.

`LOCAL_D1_CRASH=after:<sql>` kills the process as soon as a batch with a statement containing `<sql>` has
committed; `before:<sql>` kills it just before such a batch runs. It exists so tests can stop a real server
between two steps of a request (what a power cut or an evicted isolate does) and check what a retry sees.
Only the local adapter reads it: the Worker never builds this wrapper.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from db.port import Database, QueryResult, Statement

VARIABLE = "LOCAL_D1_CRASH"


@dataclass(frozen=True)
class CrashPoint:
    when: Literal["before", "after"]
    sql: str

    @classmethod
    def parse(cls, value: str) -> CrashPoint | None:
        """None for an empty value; ValueError for one that is neither before:… nor after:…."""
        if not value.strip():
            return None
        when, _, sql = value.partition(":")
        if when not in ("before", "after") or not sql.strip():
            raise ValueError(f"{VARIABLE} must be before:<sql> or after:<sql>")
        return cls("before" if when == "before" else "after", sql.strip())

    def matches(self, statements: Sequence[Statement]) -> bool:
        return any(self.sql in statement.sql for statement in statements)


def _die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


class CrashingDatabase:
    """A Database that dies at its crash point; everything else is the inner database's."""

    def __init__(self, inner: Database, point: CrashPoint) -> None:
        self._inner = inner
        self._point = point

    def prepare(self, sql: str) -> Statement:
        return self._inner.prepare(sql)

    async def batch(self, statements: Sequence[Statement]) -> list[QueryResult]:
        hit = self._point.matches(statements)
        if hit and self._point.when == "before":
            _die()
        results = await self._inner.batch(statements)
        if hit:
            _die()
        return results

    def with_session(self, constraint_or_bookmark: str | None = None) -> Database:
        return CrashingDatabase(self._inner.with_session(constraint_or_bookmark), self._point)

    def bookmark(self) -> str | None:
        return self._inner.bookmark()
