"""Structured JSON logs, one object per line; the sink is swappable so tests can read every line."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import Any

LogSink = Callable[[str], None]


def _stdout(line: str) -> None:
    # print() is what Workers forwards to the log stream (console.log); locally it is stdout.
    print(line, file=sys.stdout, flush=True)


class Logger:
    """Writes one JSON object per call; callers pass only fields that are safe to keep."""

    def __init__(self, sink: LogSink | None = None) -> None:
        self.sink = sink or _stdout

    def log(self, level: str, event: str, **fields: Any) -> None:
        record = {"level": level, "event": event, **fields}
        self.sink(json.dumps(record, separators=(",", ":"), default=str, ensure_ascii=False))

    def info(self, event: str, **fields: Any) -> None:
        self.log("info", event, **fields)

    def warning(self, event: str, **fields: Any) -> None:
        self.log("warning", event, **fields)

    def error(self, event: str, **fields: Any) -> None:
        self.log("error", event, **fields)


class MemoryLogSink:
    """Keeps lines in memory; used by tests that scan logs for leaks."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def __call__(self, line: str) -> None:
        self.lines.append(line)

    def records(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.lines]
