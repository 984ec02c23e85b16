"""Runs the real local server as `make dev` does (same CLI), on a free port with its own database."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import httpx

from local.config import PROJECT_ROOT


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _status(url: str, timeout: float) -> int:
    """GET `url`'s status with the standard library: Workers boot in background threads while other tests
    run, and pytest-httpx (which patches httpx process-wide) would answer an httpx request from its mocks."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as answer:
            return int(answer.status)
    except urllib.error.HTTPError as error:
        return int(error.code)


def wait_until_healthy(
    process: subprocess.Popen[bytes], url: str, log_path: Path, timeout: float, expect_status: int = 200
) -> bool:
    """Polls GET /health until it answers `expect_status`; raises if the process exits first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited early:\n{log_path.read_text(errors='replace')[-4000:]}")
        try:
            if _status(f"{url}/health", timeout=30) == expect_status:
                return True
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.1)
    return False


class LiveServer:
    """`python -m local.cli dev` in a subprocess; stopped (never left behind) by stop()."""

    def __init__(
        self,
        workdir: Path,
        env_vars: dict[str, str],
        *,
        extra_args: list[str] | None = None,
        project_root: Path = PROJECT_ROOT,
    ) -> None:
        # project_root: another checkout's server (bench/load.py --baseline runs an older commit's).
        self.project_root = project_root
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.vars_file = workdir / "dev.vars"
        self.vars_file.write_text("".join(f"{key}={value}\n" for key, value in env_vars.items()))
        self.database_path = workdir / "live.sqlite"
        self.log_path = workdir / "server.log"
        self.extra_args = extra_args if extra_args is not None else ["--no-chain", "--no-cron"]
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 30.0) -> LiveServer:
        environment = {
            **os.environ,
            "PYTHONPATH": str(self.project_root / "src"),
            "TATTLEHASH_DEV_VARS": str(self.vars_file),
            "TATTLEHASH_DB_PATH": str(self.database_path),
        }
        command = [sys.executable, "-m", "local.cli", "dev", "--port", str(self.port), *self.extra_args]
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(command, cwd=self.project_root, env=environment, stdout=log, stderr=log)
        if wait_until_healthy(self.process, self.url, self.log_path, timeout):
            return self
        self.stop()
        raise RuntimeError(f"server did not become healthy:\n{self.log_path.read_text()}")

    def fire_cron(self) -> list[str]:
        """Runs the scheduled jobs through wrangler's cron URL; the names of the jobs that failed."""
        answer = httpx.get(f"{self.url}/cdn-cgi/handler/scheduled", timeout=60)
        answer.raise_for_status()
        return sorted(answer.json()["failures"])

    def logs(self) -> str:
        return self.log_path.read_text() if self.log_path.exists() else ""

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process = None
