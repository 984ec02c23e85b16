"""Runs the Worker in the real Workers runtime: `wrangler dev` (workerd, Pyodide) with local D1.

The Worker is the deploy bundle itself: `main` is the repository's src/entry.py and python_modules/ is the
one `make bundle` built (linked into the run's folder). The run's own wrangler config is wrangler.toml with
this test's rate limits, and its vars go in the run's .dev.vars: the only differences from a deploy. With ../shared/edge present, workerd
reads its Pyodide bundle from there (MINIFLARE_WORKERD_PATH → edge/workerd-offline); elsewhere it downloads it.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import time
import tomllib
from pathlib import Path
from typing import Any

import httpx

from db.migrations import local_d1_filename
from local.config import D1_BINDING, PROJECT_ROOT
from tests.support.server import free_port, wait_until_healthy

EDGE_KIT = PROJECT_ROOT.parent / "shared" / "edge"
WRANGLER = PROJECT_ROOT / "node_modules" / ".bin" / "wrangler"
REAL_WORKERD = PROJECT_ROOT / "node_modules" / "@cloudflare" / "workerd-linux-64" / "bin" / "workerd"
BUNDLE = PROJECT_ROOT / "python_modules"
# A Python exception that escaped the Worker: workerd prints it as a PythonError with its traceback.
TRACEBACK = re.compile(r"Traceback \(most recent call last\)|PythonError|Uncaught")


def runtime_environment(workdir: Path) -> dict[str, str]:
    environment = {
        **os.environ,
        "WRANGLER_SEND_METRICS": "false",
        "NO_COLOR": "1",
        "FORCE_COLOR": "0",
        # wrangler writes its own debug logs under the config home: keep them in the run's folder.
        "XDG_CONFIG_HOME": str(workdir / "config"),
    }
    if (EDGE_KIT / "workerd-offline").exists():
        environment["EDGE_REAL_WORKERD"] = str(REAL_WORKERD)
        environment["MINIFLARE_WORKERD_PATH"] = str(EDGE_KIT / "workerd-offline")
    return environment


def worker_config(rate_limits: dict[str, int] | None, *, without_database: bool = False) -> dict[str, Any]:
    """wrangler.toml as JSON, pointing at the repository's src/ and migrations, with these rate limits."""
    manifest = tomllib.loads((PROJECT_ROOT / "wrangler.toml").read_text())
    manifest.pop("env", None)
    manifest["main"] = str(PROJECT_ROOT / manifest["main"])
    if without_database:
        # Misconfiguration tests: a deploy without its D1 binding (the migrations are skipped too).
        manifest.pop("d1_databases")
    for database in manifest.get("d1_databases", []):
        database["migrations_dir"] = str(PROJECT_ROOT / database["migrations_dir"])
    for binding in manifest.get("ratelimits", []):
        if rate_limits is not None and binding["name"] in rate_limits:
            binding["simple"]["limit"] = rate_limits[binding["name"]]
    return manifest


class WorkerdServer:
    """`wrangler dev` on a free port with its own local D1; stop() ends every process it started."""

    def __init__(
        self,
        workdir: Path,
        env_vars: dict[str, str],
        *,
        rate_limits: dict[str, int] | None = None,
        without_database: bool = False,
    ) -> None:
        if not (BUNDLE / "bundle.json").exists():
            raise RuntimeError("python_modules/ is missing: run `make bundle` first")
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.config_path = workdir / "wrangler.json"
        self.config = worker_config(rate_limits, without_database=without_database)
        self.config_path.write_text(json.dumps(self.config, indent=2))
        # As a developer would: secrets and local overrides in .dev.vars beside the config (wrangler hides them).
        (workdir / ".dev.vars").write_text("".join(f"{key}={value}\n" for key, value in env_vars.items()))
        link = workdir / "python_modules"
        if not link.exists():
            link.symlink_to(BUNDLE, target_is_directory=True)
        self.state = workdir / "state"
        database_id = next(
            (db["database_id"] for db in self.config.get("d1_databases", []) if db["binding"] == D1_BINDING), "none"
        )
        self.database_path = self.state / "v3" / "d1" / "miniflare-D1DatabaseObject" / local_d1_filename(database_id)
        self.log_path = workdir / "workerd.log"
        self.environment = runtime_environment(workdir)
        self.process: subprocess.Popen[bytes] | None = None
        self.launched_at = 0.0
        self.ready_after = 0.0

    def _wrangler(self, *args: str) -> list[str]:
        return [str(WRANGLER), *args, "--config", str(self.config_path)]

    def migrate(self) -> None:
        if "d1_databases" not in self.config:
            return
        database_name = self.config["d1_databases"][0]["database_name"]
        subprocess.run(
            self._wrangler("d1", "migrations", "apply", database_name, "--local", "--persist-to", str(self.state)),
            cwd=self.workdir,
            env=self.environment,
            check=True,
            capture_output=True,
            timeout=120,
        )

    def copy_state_from(self, source: WorkerdServer) -> None:
        """Starts from another run's local D1 (already migrated by `wrangler d1`): one migration per session."""
        shutil.copytree(source.state, self.state)

    def launch(self) -> None:
        """Starts `wrangler dev` (migrating first unless its state was copied) without waiting for it."""
        if not self.state.exists():
            self.migrate()
        command = self._wrangler(
            "dev",
            "--ip", "127.0.0.1",
            "--port", str(self.port),
            "--inspector-port", str(free_port()),
            "--persist-to", str(self.state),
            "--show-interactive-dev-session=false",
            # "log" (the default) is the level of the Worker's own print()/console.log lines.
            "--log-level", "log",
        )  # fmt: skip
        self.launched_at = time.monotonic()
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                command,
                cwd=self.workdir,
                env=self.environment,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,  # its own process group: stop() ends workerd with it
            )

    def start(self, timeout: float = 120.0, *, expect_status: int = 200) -> WorkerdServer:
        self.launch()
        return self.wait_until_ready(timeout, expect_status=expect_status)

    def wait_until_ready(self, timeout: float = 120.0, *, expect_status: int = 200) -> WorkerdServer:
        """Blocks until the launched Worker answers /health with `expect_status`; stops it and raises if not."""
        assert self.process is not None
        if self.ready_after:
            return self
        if wait_until_healthy(self.process, self.url, self.log_path, timeout, expect_status):
            self.ready_after = time.monotonic() - self.launched_at
            return self
        self.stop()
        raise RuntimeError(f"the Worker did not become healthy in {timeout:.0f} s:\n{self.logs()[-4000:]}")

    def fire_cron(self) -> list[str]:
        """Runs the scheduled handler through wrangler's cron URL; the jobs that failed, from its log line."""
        since = len(self.logs())
        answer = httpx.get(f"{self.url}/cdn-cgi/handler/scheduled", timeout=60)
        answer.raise_for_status()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            for line in self.logs()[since:].splitlines():
                if '"event":"scheduled_run"' in line:
                    return sorted(json.loads(line[line.index("{") :])["failures"])
            time.sleep(0.05)
        raise AssertionError("the scheduled handler logged no scheduled_run line")

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def tracebacks(self, since: int = 0) -> list[str]:
        """Lines of the log (from character `since`) that show a Python exception escaping the Worker."""
        return [line for line in self.logs()[since:].splitlines() if TRACEBACK.search(line)]

    def stop(self) -> None:
        if self.process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        # workerd may outlive wrangler for a moment; the group kill above reaches it, this makes sure.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process = None
