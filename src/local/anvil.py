"""A real, offline anvil chain on 127.0.0.1 (npm @foundry-rs/anvil): `make dev`'s local network and the tests' chain.

The file ``node_modules/.bin/anvil`` is a Node wrapper that spawns the native binary shipped in
``@foundry-rs/anvil-<os>-<arch>`` and does not wait for it on SIGTERM, which orphans the native process.
So the native binary is executed directly when installed, the wrapper only as a fallback
(``$ANVIL_BIN`` overrides the choice). The node runs in its own process group, and
:meth:`AnvilNode.stop` ends every process in it.
"""

from __future__ import annotations

import atexit
import contextlib
import itertools
import os
import platform
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any, Self

import httpx

__all__ = [
    "DEFAULT_CHAIN_ID",
    "HOST",
    "REPO_ROOT",
    "AnvilError",
    "AnvilNode",
    "RpcError",
    "find_anvil_binary",
    "free_port",
]

REPO_ROOT = Path(__file__).resolve().parents[2]  # the project root (src/local/ is two levels down)
HOST = "127.0.0.1"
DEFAULT_CHAIN_ID = 31337

_ARCH = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}


class AnvilError(RuntimeError):
    """anvil is missing, failed to start, or a transaction did not succeed."""


class RpcError(AnvilError):
    """The node answered a JSON-RPC request with an error object."""

    def __init__(self, method: str, code: int, message: str, data: Any = None) -> None:
        super().__init__(f"{method}: JSON-RPC error {code}: {message}" + (f" ({data})" if data else ""))
        self.method = method
        self.code = code
        self.message = message
        self.data = data


def find_anvil_binary() -> Path:
    """Return the anvil executable: $ANVIL_BIN, else the npm native binary, else the .bin wrapper."""
    override = os.environ.get("ANVIL_BIN")
    if override:
        return Path(override)
    scope = REPO_ROOT / "node_modules" / "@foundry-rs"
    arch = _ARCH.get(platform.machine().lower(), platform.machine().lower())
    native = scope / f"anvil-{platform.system().lower()}-{arch}" / "bin" / "anvil"
    for candidate in (native, scope / "anvil" / "dist" / "anvil"):
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    return REPO_ROOT / "node_modules" / ".bin" / "anvil"


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def _exited_unreaped(pid: int) -> bool:
    """True once child ``pid`` has exited; it is left as a zombie for Popen to reap (WNOWAIT)."""
    try:
        return os.waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT | os.WNOHANG) is not None
    except ChildProcessError:  # already reaped
        return True


def _port_is_free(port: int) -> bool:
    """True if nothing listens on 127.0.0.1:``port`` (SO_REUSEADDR ignores TIME_WAIT leftovers)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((HOST, port))
        except OSError:
            return False
        return True


def _group_members(pgid: int) -> list[int]:
    """Pids of live (non-zombie) processes in process group ``pgid``; [] where /proc is unavailable."""
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rpartition(")")[2].split()  # after "pid (comm)"
        except OSError:
            continue
        if len(fields) > 2 and fields[2] == str(pgid) and fields[0] != "Z":
            members.append(int(stat.parent.name))
    return members


class AnvilNode:
    """One anvil process on 127.0.0.1 with a synchronous JSON-RPC client; use as a context manager."""

    def __init__(
        self,
        *,
        chain_id: int = DEFAULT_CHAIN_ID,
        port: int | None = None,
        binary: Path | str | None = None,
        extra_args: Sequence[str] = (),
        startup_timeout: float = 30.0,
    ) -> None:
        """Configure a node; nothing runs until :meth:`start` (or ``with``)."""
        self.chain_id = chain_id
        self.port = port
        self.binary = Path(binary) if binary is not None else find_anvil_binary()
        self.extra_args = tuple(extra_args)
        self.startup_timeout = startup_timeout
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self._client: httpx.Client | None = None
        self._ids = itertools.count(1)
        self._accounts: list[str] | None = None
        self._cmd: list[str] = []

    # -- lifecycle ---------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """The node's JSON-RPC endpoint, e.g. ``http://127.0.0.1:54321``."""
        if self.port is None:
            raise AnvilError("anvil node has not been started")
        return f"http://{HOST}:{self.port}"

    @property
    def pid(self) -> int | None:
        """The anvil process id (also its process-group id), or None when not running."""
        return self._proc.pid if self._proc is not None else None

    @property
    def running(self) -> bool:
        """True while the anvil process is alive."""
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> Self:
        """Launch anvil and block until ``eth_chainId`` answers; raise AnvilError with its output if not."""
        if self._proc is not None:
            return self
        if not self.binary.exists():
            raise AnvilError(
                f"anvil not found at {self.binary}; run `npm ci` in {REPO_ROOT} (package @foundry-rs/anvil)"
            )
        fixed_port = self.port is not None
        # Checked up front: otherwise whatever already listens there would answer the readiness probe.
        if self.port is not None and not _port_is_free(self.port):
            raise AnvilError(f"port {self.port} on {HOST} is already in use")
        attempts = 1 if fixed_port else 3
        for attempt in range(1, attempts + 1):
            if not fixed_port:
                self.port = free_port()
            try:
                self._launch()
                self._wait_ready()
                break
            except BaseException as exc:  # never leave a half-started process behind
                output = self.output()
                self.stop()
                # Lost a race for the free port: pick another one.
                if isinstance(exc, AnvilError) and attempt < attempts and "in use" in output.lower():
                    continue
                raise
        atexit.register(self.stop)
        return self

    def _launch(self) -> None:
        """Spawn the process in its own session (process group), output to a temp file."""
        self._log = tempfile.TemporaryFile(prefix="anvil-")  # noqa: SIM115 - closed in stop()
        cmd = [
            str(self.binary),
            "--host",
            HOST,
            "--port",
            str(self.port),
            "--chain-id",
            str(self.chain_id),
            "--quiet",
            *self.extra_args,
        ]
        self._cmd = cmd
        self._proc = subprocess.Popen(  # noqa: S603 (fixed binary, arguments we build)
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            cwd=REPO_ROOT,
            start_new_session=True,
        )
        self._client = httpx.Client(base_url=self.url, timeout=10.0, trust_env=False)

    def _wait_ready(self) -> None:
        """Poll ``eth_chainId`` until it answers, the process dies, or the startup timeout passes."""
        deadline = time.monotonic() + self.startup_timeout
        last_error: Exception | None = None
        while time.monotonic() < deadline:
            assert self._proc is not None
            if self._proc.poll() is not None:
                raise AnvilError(
                    f"anvil exited with code {self._proc.returncode} during startup "
                    f"({' '.join(self._cmd)}):\n{self.output()}"
                )
            try:
                chain_id = int(self.rpc("eth_chainId"), 16)
            except (httpx.TransportError, RpcError) as exc:
                last_error = exc
                time.sleep(0.05)
                continue
            if chain_id != self.chain_id:
                raise AnvilError(f"anvil reports chain id {chain_id}, expected {self.chain_id}")
            return
        raise AnvilError(
            f"anvil did not answer on {self.url} within {self.startup_timeout}s "
            f"(last error: {last_error!r}):\n{self.output()}"
        )

    def output(self) -> str:
        """Everything anvil has written to stdout/stderr so far (for error messages)."""
        if self._log is None or self._log.closed:
            return ""
        self._log.flush()
        self._log.seek(0)
        return self._log.read().decode("utf-8", "replace")

    def stop(self, timeout: float = 5.0) -> None:
        """SIGTERM the node's process group, SIGKILL it after ``timeout``; idempotent, leaves nothing."""
        proc, self._proc = self._proc, None
        if self._client is not None:
            self._client.close()
            self._client = None
        if proc is not None and proc.returncode is None:
            # start_new_session=True: the process leads its own group, pgid == pid. Until we reap the
            # leader its pid (and so the pgid) cannot be recycled, so signalling the group is safe.
            pgid = proc.pid
            # Node wrapper case: stop the native child first, so the wrapper reaps it and exits by
            # itself (SIGTERM to the wrapper would orphan the child). Native case: no other members.
            children = [pid for pid in _group_members(pgid) if pid != pgid]
            for pid in children:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGTERM)
            if not children:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(pgid, signal.SIGTERM)
            deadline = time.monotonic() + timeout
            while not _exited_unreaped(proc.pid) and time.monotonic() < deadline:
                time.sleep(0.02)
            # SIGKILL whatever is left (a process that ignored SIGTERM), then reap the leader.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pgid, signal.SIGKILL)
            proc.wait(timeout=timeout)
        if self._log is not None:
            self._log.close()
            self._log = None
        self._accounts = None
        atexit.unregister(self.stop)

    def __enter__(self) -> Self:
        """Start the node (if needed) and return it."""
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        """Stop the node."""
        self.stop()

    def __repr__(self) -> str:
        """Show where the node listens and whether it runs."""
        state = f"pid={self.pid}" if self.running else "stopped"
        return f"<AnvilNode {self.url if self.port else 'unstarted'} chain_id={self.chain_id} {state}>"

    # -- JSON-RPC ----------------------------------------------------------------------------------

    def rpc(self, method: str, params: Sequence[Any] | None = None) -> Any:
        """Send one JSON-RPC request and return its ``result``; raise RpcError on an error response."""
        if self._client is None:
            raise AnvilError("anvil node is not running")
        payload = {"jsonrpc": "2.0", "id": next(self._ids), "method": method, "params": list(params or [])}
        response = self._client.post("/", json=payload)
        response.raise_for_status()
        body = response.json()
        if body.get("error") is not None:
            err = body["error"]
            raise RpcError(method, int(err.get("code", 0)), str(err.get("message", "")), err.get("data"))
        return body.get("result")

    @property
    def accounts(self) -> list[str]:
        """anvil's unlocked, funded dev accounts (``eth_accounts``; 10 x 10000 ETH by default)."""
        if self._accounts is None:
            self._accounts = list(self.rpc("eth_accounts"))
        return list(self._accounts)

    def set_balance(self, address: str, wei: int) -> None:
        """Set ``address``'s native balance to exactly ``wei`` (``anvil_setBalance``)."""
        self.rpc("anvil_setBalance", [address, hex(wei)])

    def get_balance(self, address: str) -> int:
        """Native balance of ``address`` in wei at the latest block."""
        return int(self.rpc("eth_getBalance", [address, "latest"]), 16)

    def mine(self, blocks: int = 1) -> None:
        """Mine ``blocks`` empty blocks now (``anvil_mine``)."""
        self.rpc("anvil_mine", [hex(blocks)])

    def block_number(self) -> int:
        """The latest block number."""
        return int(self.rpc("eth_blockNumber"), 16)

    def snapshot(self) -> str:
        """Snapshot chain state (``evm_snapshot``); pass the id to :meth:`revert`."""
        return str(self.rpc("evm_snapshot"))

    def revert(self, snapshot_id: str) -> None:
        """Restore the state saved by :meth:`snapshot` (the id is consumed)."""
        if not self.rpc("evm_revert", [snapshot_id]):
            raise AnvilError(f"evm_revert({snapshot_id}) failed")

    def wait_for_receipt(self, tx_hash: str, timeout: float = 10.0) -> dict[str, Any]:
        """Poll ``eth_getTransactionReceipt`` until the transaction is mined; return the receipt."""
        deadline = time.monotonic() + timeout
        while True:
            receipt = self.rpc("eth_getTransactionReceipt", [tx_hash])
            if receipt is not None:
                return dict(receipt)
            if time.monotonic() >= deadline:
                raise AnvilError(f"no receipt for {tx_hash} after {timeout}s (is mining disabled?)")
            time.sleep(0.02)
