"""Headless Chromium over the DevTools protocol on a pipe (no port, no websocket), and a test wallet: an EIP-1193
provider injected into pages that forwards eth_requestAccounts / eth_chainId / personal_sign to an anvil node."""

from __future__ import annotations

import base64
import contextlib
import itertools
import json
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--no-default-browser-check",
    "--disable-background-networking", "--disable-component-update", "--disable-sync", "--hide-scrollbars",
    "--disable-extensions", "--mute-audio", "--remote-debugging-pipe",
]  # fmt: skip


class CdpError(RuntimeError):
    """Chromium answered a DevTools command with an error, or a page expression threw."""


def chromium_binary() -> str:
    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    assert binary, "Chromium is installed by `make test` (Debian package chromium)"
    return binary


class Browser:
    """One Chromium process; commands are NUL-separated JSON on fds 3 (in) and 4 (out), as --remote-debugging-pipe
    defines. A reader thread answers waiting commands and hands events to the pages' listeners."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.process: subprocess.Popen[bytes] | None = None
        self._ids = itertools.count(1)
        self._write_lock = threading.Lock()
        self._waiting: dict[int, tuple[threading.Event, list[dict[str, Any]]]] = {}
        self._listeners: list[Callable[[dict[str, Any]], None]] = []
        self._commands_out = -1
        self._events_in = -1
        self._reader: threading.Thread | None = None

    def start(self) -> Browser:
        to_child_read, to_child_write = os.pipe()
        from_child_read, from_child_write = os.pipe()
        log = (self.workdir / "chromium.log").open("wb")
        # The shell puts the pipe ends on the fds Chromium reads (3) and writes (4), then becomes Chromium.
        script = f'exec "$0" "$@" 3<&{to_child_read} 4>&{from_child_write} {to_child_read}<&- {from_child_write}>&-'
        args = [*FLAGS, f"--user-data-dir={self.workdir / 'profile'}", "about:blank"]
        self.process = subprocess.Popen(
            ["/bin/bash", "-c", script, chromium_binary(), *args],
            pass_fds=(to_child_read, from_child_write),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=True,
        )
        log.close()
        os.close(to_child_read)
        os.close(from_child_write)
        self._commands_out, self._events_in = to_child_write, from_child_read
        self._reader = threading.Thread(target=self._read, name="cdp-reader", daemon=True)
        self._reader.start()
        self.call("Target.setDiscoverTargets", {"discover": False})
        return self

    def _read(self) -> None:
        buffer = b""
        while True:
            try:
                chunk = os.read(self._events_in, 1 << 16)
            except OSError:
                chunk = b""
            if not chunk:
                break
            buffer += chunk
            *messages, buffer = buffer.split(b"\0")
            for raw in messages:
                message = json.loads(raw)
                if "id" in message and message["id"] in self._waiting:
                    done, box = self._waiting[message["id"]]
                    box.append(message)
                    done.set()
                else:
                    for listener in list(self._listeners):
                        listener(message)
        for done, _ in list(self._waiting.values()):
            done.set()

    def call(self, method: str, params: dict[str, Any] | None = None, *, session: str | None = None,
             timeout: float = 30.0) -> dict[str, Any]:  # fmt: skip
        """Send one command and wait for its answer (its `result`); CdpError on an error answer."""
        command_id = next(self._ids)
        message: dict[str, Any] = {"id": command_id, "method": method, "params": params or {}}
        if session is not None:
            message["sessionId"] = session
        done, box = threading.Event(), []
        self._waiting[command_id] = (done, box)
        try:
            with self._write_lock:
                os.write(self._commands_out, json.dumps(message).encode() + b"\0")
            if not done.wait(timeout) or not box:
                raise CdpError(f"{method}: no answer within {timeout} s")
        finally:
            self._waiting.pop(command_id, None)
        answer = box[0]
        if "error" in answer:
            raise CdpError(f"{method}: {answer['error']}")
        return dict(answer.get("result", {}))

    def listen(self, listener: Callable[[dict[str, Any]], None]) -> None:
        self._listeners.append(listener)

    def unlisten(self, listener: Callable[[dict[str, Any]], None]) -> None:
        with contextlib.suppress(ValueError):
            self._listeners.remove(listener)

    def new_page(self, width: int = 900, height: int = 1200) -> Page:
        """A tab in a fresh browser context (its own cookies and storage), with Page, Runtime and Log enabled."""
        context = self.call("Target.createBrowserContext")["browserContextId"]
        target = self.call("Target.createTarget", {"url": "about:blank", "browserContextId": context})["targetId"]
        session = self.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        page = Page(self, context, session)
        for domain in ("Page", "Runtime", "Log"):
            page.call(f"{domain}.enable")
        page.viewport(width, height)
        return page

    def stop(self) -> None:
        if self.process is None:
            return
        with contextlib.suppress(CdpError, OSError):
            self.call("Browser.close", timeout=5)
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        for fd in (self._commands_out, self._events_in):
            with contextlib.suppress(OSError):
                os.close(fd)
        self.process = None


class Page:
    """One tab: navigate, evaluate, wait for a condition, type keys, take screenshots; records console problems."""

    def __init__(self, browser: Browser, context: str, session: str) -> None:
        self.browser, self.context, self.session = browser, context, session
        self.log: list[str] = []
        self.bindings: dict[str, Callable[[str], None]] = {}
        browser.listen(self._on_event)

    def _on_event(self, message: dict[str, Any]) -> None:
        if message.get("sessionId") != self.session:
            return
        method, params = message.get("method"), message.get("params", {})
        if method == "Log.entryAdded":
            entry = params["entry"]
            self.log.append(f"{entry.get('level')}: {entry.get('text')}")
        elif method == "Runtime.exceptionThrown":
            self.log.append(f"exception: {params['exceptionDetails'].get('exception', {}).get('description')}")
        elif method == "Runtime.consoleAPICalled" and params.get("type") in {"error", "warning"}:
            self.log.append(f"console.{params['type']}: {[arg.get('value') for arg in params.get('args', [])]}")
        elif method == "Runtime.bindingCalled" and params.get("name") in self.bindings:
            # Off the reader thread: the handler sends commands of its own and waits for their answers.
            handler = self.bindings[params["name"]]
            threading.Thread(target=handler, args=(params["payload"],), daemon=True).start()

    def call(self, method: str, params: dict[str, Any] | None = None, timeout: float = 30.0) -> dict[str, Any]:
        return self.browser.call(method, params, session=self.session, timeout=timeout)

    def add_init_script(self, source: str) -> None:
        """Runs before any script of every document this tab loads (outside the page's CSP)."""
        self.call("Page.addScriptToEvaluateOnNewDocument", {"source": source})

    def add_binding(self, name: str, handler: Callable[[str], None]) -> None:
        """`window[name](string)` in the page calls `handler(string)` here."""
        self.bindings[name] = handler
        self.call("Runtime.addBinding", {"name": name})

    def viewport(self, width: int, height: int, *, mobile: bool = False) -> None:
        self.call(
            "Emulation.setDeviceMetricsOverride",
            {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": mobile},
        )

    def navigate(self, url: str) -> None:
        answer = self.call("Page.navigate", {"url": url})
        if answer.get("errorText"):
            raise CdpError(f"navigation to {url} failed: {answer['errorText']}")
        self.wait_for("document.readyState === 'complete'")

    def evaluate(self, expression: str) -> Any:
        answer = self.call("Runtime.evaluate", {"expression": expression, "returnByValue": True, "awaitPromise": True})
        if "exceptionDetails" in answer:
            raise CdpError(f"{expression}: {answer['exceptionDetails']}")
        return answer.get("result", {}).get("value")

    def wait_for(self, expression: str, timeout: float = 20.0) -> Any:
        """Polls `expression` until it is truthy (returns it); CdpError with the page's state when it never is."""
        deadline = time.monotonic() + timeout
        while True:
            value = self.evaluate(expression)
            if value:
                return value
            if time.monotonic() > deadline:
                state = self.evaluate("JSON.stringify({state: document.body && document.body.dataset.state,"
                                      " status: (document.getElementById('status') || {}).textContent})")  # fmt: skip
                raise CdpError(f"timed out waiting for {expression}; page: {state}; log: {self.log[-5:]}")
            time.sleep(0.05)

    def text(self, selector: str) -> str:
        return str(self.evaluate(f"(document.querySelector({json.dumps(selector)}) || {{}}).textContent || ''"))

    def press(self, key: str) -> None:
        """A real key press (keyDown + keyUp) on whatever has the focus: Enter, Tab or Space."""
        codes = {"Enter": (13, "\r"), "Tab": (9, ""), " ": (32, " ")}
        code, text = codes[key]
        base = {"key": key, "code": "Space" if key == " " else key, "windowsVirtualKeyCode": code}
        self.call("Input.dispatchKeyEvent", {"type": "keyDown", **base, **({"text": text} if text else {})})
        self.call("Input.dispatchKeyEvent", {"type": "keyUp", **base})

    def tab_to(self, element_id: str, limit: int = 30) -> int:
        """Presses Tab until the element with this id has the focus; how many presses it took."""
        for presses in range(1, limit + 1):
            self.press("Tab")
            if self.evaluate("document.activeElement && document.activeElement.id") == element_id:
                return presses
        raise CdpError(f"#{element_id} never got the focus with Tab")

    def focused(self) -> str | None:
        return self.evaluate("document.activeElement && document.activeElement.id") or None

    def screenshot(self, path: Path) -> bytes:
        data = base64.b64decode(
            self.call("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True})["data"]
        )
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        return data

    def csp_violations(self) -> list[str]:
        return [line for line in self.log if "Content Security Policy" in line]

    def close(self) -> None:
        self.browser.unlisten(self._on_event)
        with contextlib.suppress(CdpError):
            self.browser.call("Target.disposeBrowserContext", {"browserContextId": self.context})


# ---- the test wallet

_PROVIDER = r"""
(() => {
  const options = __OPTIONS__;
  const pending = new Map();
  const listeners = {};
  let next = 0;
  window.__testWalletReply = (id, result, error) => {
    const call = pending.get(id);
    if (!call) return;
    pending.delete(id);
    if (error) {
      const failure = new Error(error.message);
      failure.code = error.code;
      call.reject(failure);
    } else {
      call.resolve(result);
    }
  };
  const provider = {
    isTestWallet: true,
    request(args) {
      return new Promise((resolve, reject) => {
        const id = ++next;
        pending.set(id, { resolve, reject });
        window.__testWallet(JSON.stringify({ id, method: args.method, params: args.params || [] }));
      });
    },
    on(event, handler) { (listeners[event] = listeners[event] || []).push(handler); return provider; },
    removeListener(event, handler) {
      listeners[event] = (listeners[event] || []).filter((known) => known !== handler);
      return provider;
    },
  };
  window.__testWalletEmit = (event, value) => (listeners[event] || []).forEach((handler) => handler(value));
  if (options.eip6963) {
    const info = Object.freeze({
      uuid: "5f0d8a2e-4c1b-4f7e-9a63-2b8e1c0d9f41", name: "Anvil test wallet", rdns: "test.anvil.wallet",
      icon: "data:image/svg+xml,%3Csvg xmlns='http://www.w3.org/2000/svg' width='1' height='1'/%3E",
    });
    const announce = () => window.dispatchEvent(
      new CustomEvent("eip6963:announceProvider", { detail: Object.freeze({ info, provider }) }));
    window.addEventListener("eip6963:requestProvider", announce);
    announce();
  }
  if (options.legacy) window.ethereum = provider;
})();
"""

REJECTED = {"code": 4001, "message": "User rejected the request."}


@dataclass
class AnvilWallet:
    """What the injected wallet does: whose account it shares, which chain it reports, what the user rejects.

    Every other request goes to the anvil node, which signs personal_sign with its unlocked dev account.
    """

    rpc_url: str
    account: str
    chain_id: str | None = None  # None: the node's own
    reject: set[str] = field(default_factory=set)  # methods the "user" rejects with 4001
    calls: list[tuple[str, list[Any]]] = field(default_factory=list)

    def answer(self, method: str, params: list[Any]) -> tuple[Any, dict[str, Any] | None]:
        self.calls.append((method, params))
        if method in self.reject:
            return None, REJECTED
        if method in {"eth_requestAccounts", "eth_accounts"}:
            return [self.account], None
        if method == "eth_chainId" and self.chain_id is not None:
            return self.chain_id, None
        payload = {"jsonrpc": "2.0", "id": 1, "method": method, "params": params}
        body = httpx.post(self.rpc_url, json=payload, timeout=10).json()
        if body.get("error"):
            return None, {"code": body["error"].get("code", -32603), "message": body["error"].get("message", "")}
        return body["result"], None

    def signed_messages(self) -> list[str]:
        return [bytes.fromhex(params[0][2:]).decode() for method, params in self.calls if method == "personal_sign"]


def install_wallet(page: Page, wallet: AnvilWallet, *, eip6963: bool = True, legacy: bool = True) -> None:
    """Injects the provider into every document of `page` (EIP-6963 announcement and/or window.ethereum)."""

    def handle(payload: str) -> None:
        request = json.loads(payload)
        result, error = wallet.answer(request["method"], request["params"])
        page.evaluate(f"window.__testWalletReply({int(request['id'])}, {json.dumps(result)}, {json.dumps(error)})")

    page.add_binding("__testWallet", handle)
    page.add_init_script(_PROVIDER.replace("__OPTIONS__", json.dumps({"eip6963": eip6963, "legacy": legacy})))
