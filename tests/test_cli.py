"""The local CLI: migrate, create-key and cron, run as a newcomer would run them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx

from local.config import PROJECT_ROOT, parse_dotenv
from tests.conftest import BASE_VARS
from tests.support.server import LiveServer


def run_cli(tmp_path, *args: str) -> subprocess.CompletedProcess[str]:
    environment = {
        **os.environ,
        "PYTHONPATH": str(PROJECT_ROOT / "src"),
        "TATTLEHASH_DB_PATH": str(tmp_path / "cli.sqlite"),
        "TATTLEHASH_DEV_VARS": str(tmp_path / "none.vars"),
    }
    return subprocess.run(
        [sys.executable, "-m", "local.cli", *args], cwd=PROJECT_ROOT, env=environment,
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


def test_migrate_then_create_key_then_cron(tmp_path):
    migrated = run_cli(tmp_path, "migrate")
    assert migrated.returncode == 0, migrated.stderr
    assert json.loads(migrated.stdout)["pending"] == []
    created = run_cli(tmp_path, "create-key", "--email", "cli@example.com")
    assert created.returncode == 0, created.stderr
    issued = json.loads(created.stdout)
    assert issued["api_key"].startswith("thk_")
    cron = run_cli(tmp_path, "cron")
    assert cron.returncode == 0, cron.stderr
    assert json.loads(cron.stdout)["failures"] == {}


def test_dev_vars_parsing():
    text = "# comment\nA=1\nB = 'two'\nexport C=\"three\"\n\nbroken line\n"
    assert parse_dotenv(text) == {"A": "1", "B": "two", "C": "three"}


def test_dev_serves_on_asyncios_event_loop(tmp_path):
    """`dev` runs uvicorn on asyncio's loop, never uvloop, even where uvloop is installed: busy with requests,
    uvloop accepted 50 connections that arrived together over 0.7-0.9 s, one a loop iteration, so their first
    requests waited that long (local.cli.uvicorn_options); asyncio accepts every pending connection at once."""
    server = LiveServer(tmp_path, dict(BASE_VARS)).start()
    try:
        assert httpx.get(f"{server.url}/health", timeout=10).status_code == 200
        assert server.process is not None
        loaded = Path(f"/proc/{server.process.pid}/maps").read_text()
    finally:
        server.stop()
    assert "site-packages/uvicorn" in loaded or "httptools" in loaded  # the map is the server's
    assert "uvloop" not in loaded
