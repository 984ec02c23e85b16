"""`make demo` against the server as `make dev` runs it (with its own anvil chain): the whole flow succeeds."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from local.anvil import free_port
from local.config import PROJECT_ROOT
from tests.support.server import LiveServer

pytestmark = pytest.mark.slow


def test_demo_walks_the_full_gatekeeper_flow(tmp_path, env_vars):
    chain_port = free_port()
    server = LiveServer(tmp_path, env_vars, extra_args=["--chain-port", str(chain_port), "--no-cron"]).start()
    try:
        environment = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT / "src"),
                       "TATTLEHASH_DEV_VARS": str(server.vars_file)}  # fmt: skip
        result = subprocess.run(
            [sys.executable, "-m", "local.cli", "demo", "--server", server.url,
             "--chain", f"http://127.0.0.1:{chain_port}"],
            cwd=PROJECT_ROOT, env=environment, capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
    finally:
        server.stop()
    assert result.returncode == 0, result.stdout + result.stderr + server.logs()
    output = result.stdout
    assert '"status": "INTENT_LOCKED"' in output
    assert '"status": "COMPLETED"' in output
    assert "Open the proof: https://tattlehash.test/proof/" in output
    # The chain the dev server started is gone with it.
    with pytest.raises(OSError):
        import socket

        socket.create_connection(("127.0.0.1", chain_port), timeout=1).close()
