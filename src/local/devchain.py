"""Starts a local anvil chain for `make dev` so the `local` network can be checked without any provider."""

from __future__ import annotations

import json
import subprocess
import time
import urllib.request
from pathlib import Path

from local.config import PROJECT_ROOT


class DevChain:
    """An anvil process on 127.0.0.1; stopped on exit."""

    def __init__(self, port: int = 8545, root: Path = PROJECT_ROOT) -> None:
        self.port = port
        self.binary = root / "node_modules" / ".bin" / "anvil"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def available(self) -> bool:
        return self.binary.exists()

    def _answers(self) -> bool:
        payload = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []}).encode()
        request = urllib.request.Request(self.url, payload, {"content-type": "application/json"})  # noqa: S310
        try:
            with urllib.request.urlopen(request, timeout=1) as response:  # noqa: S310 (loopback URL we built)
                return b"result" in response.read()
        except OSError:
            return False

    def start(self, timeout: float = 20.0) -> None:
        if self._answers():
            return  # one is already running there (another dev server); share it
        self.process = subprocess.Popen(  # noqa: S603 (fixed local binary and arguments)
            [
                str(self.binary),
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--chain-id",
                "31337",
                "--silent",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"anvil exited with code {self.process.returncode}")
            if self._answers():
                return
            time.sleep(0.1)
        self.stop()
        raise RuntimeError("anvil did not answer in time")

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process = None
