"""Baseline for `make bench`: a bare ASGI app doing one SQLite INSERT + SELECT per request, nothing else."""

from __future__ import annotations

import os
import sqlite3
from typing import Any

_connection = sqlite3.connect(
    os.environ.get("RAW_DB", "/tmp/raw-bench.sqlite"), isolation_level=None, check_same_thread=False
)
_connection.execute("PRAGMA journal_mode = WAL")
_connection.execute("PRAGMA synchronous = NORMAL")
_connection.execute("CREATE TABLE IF NOT EXISTS hits (id INTEGER PRIMARY KEY, at TEXT NOT NULL)")


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    cursor = _connection.execute("INSERT INTO hits (at) VALUES (datetime('now'))")
    row = _connection.execute("SELECT id, at FROM hits WHERE id = ?", (cursor.lastrowid,)).fetchone()
    body = f'{{"id":{row[0]},"at":"{row[1]}"}}'.encode()
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": body})
