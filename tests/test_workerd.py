"""What only the Workers runtime shows: the deploy bundle, the Rate Limiting bindings, hostile bytes, misconfiguration."""

from __future__ import annotations

import http.client
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from local.config import PROJECT_ROOT
from tests.conftest import ADMIN_TOKEN, BASE_VARS, MISCONFIGURED_VARS, WorkerdPool, assert_no_tracebacks
from tests.support.ratewindow import RATE_WINDOW_SECONDS, current_window, start_in_fresh_window
from tests.support.workerd import BUNDLE, WRANGLER, WorkerdServer, runtime_environment

pytestmark = pytest.mark.slow

WALLET = "0x52908400098527886E0F7030069857D2E4169EE7"


@pytest.fixture
def real_limits(workerd_pool: WorkerdPool) -> Iterator[WorkerdServer]:
    """The Worker with wrangler.toml's own [[ratelimits]] (60 gatekeeper calls a minute per client IP)."""
    worker = workerd_pool.get(dict(BASE_VARS), rate_limits=None)
    since = len(worker.logs())
    yield worker
    assert_no_tracebacks(worker, since)


def test_deploy_uploads_exactly_what_the_tests_run(tmp_path: Path) -> None:
    """`wrangler deploy --dry-run` writes the upload: src/ plus the vendored python_modules/ the Worker imports."""
    out = tmp_path / "upload"
    subprocess.run(
        [str(WRANGLER), "deploy", "--dry-run", "--outdir", str(out)],
        cwd=PROJECT_ROOT,
        env=runtime_environment(tmp_path),
        check=True,
        capture_output=True,
        timeout=120,
    )
    uploaded = {path.relative_to(out).as_posix() for path in out.rglob("*") if path.is_file()}
    source = {path.relative_to(PROJECT_ROOT / "src").as_posix() for path in (PROJECT_ROOT / "src").rglob("*.py")}
    vendored = {
        "python_modules/" + path.relative_to(BUNDLE).as_posix()
        for path in BUNDLE.rglob("*")
        if path.is_file() and path.suffix != ".pyc"
    }
    assert source <= uploaded
    assert vendored <= uploaded
    # The packages the Worker imports are in it, with Pyodide's builds where PyPI's cannot run.
    for module in ("pydantic/__init__.py", "pydantic_core/__init__.py", "eth_keys/__init__.py", "rfc8785/__init__.py"):
        assert f"python_modules/{module}" in uploaded
    assert "python_modules/httpx/_transports/jsfetch.py" in uploaded  # PyPI's httpx cannot fetch in workerd
    # The JavaScript secp256k1 chain.signatures calls over the FFI goes up too, as an ES module (wrangler.toml rule).
    assert "chain/secp256k1.mjs" in uploaded


def test_rate_limit_binding_returns_429(real_limits: WorkerdServer) -> None:
    body = {"wallet_address": WALLET, "chain_id": "eip155:1"}
    with httpx.Client(base_url=real_limits.url, timeout=30) as client:
        # The binding counts in fixed 60 s windows (miniflare's ratelimit worker): a run that straddles a
        # window boundary is repeated from the start of the next window, where the bucket is empty.
        for _ in range(3):
            window = start_in_fresh_window(RATE_WINDOW_SECONDS, needed=20.0)
            statuses = [client.post("/gatekeeper/v2/wallet/challenge", json=body).status_code for _ in range(61)]
            refused = client.post("/gatekeeper/v2/wallet/challenge", json=body)
            if current_window(RATE_WINDOW_SECONDS) == window:
                break
    assert statuses[:60] == [201] * 60
    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "E9003"
    assert int(refused.headers["retry-after"]) >= 1


def _raw_get(url: str, path: str, headers: list[tuple[str, bytes]]) -> tuple[int, dict]:
    host, port = url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=30)
    connection.putrequest("GET", path)
    for name, value in headers:
        connection.putheader(name, value)
    connection.endheaders()
    answer = connection.getresponse()
    status, body = answer.status, json.loads(answer.read())
    connection.close()
    return status, body


def test_non_ascii_header_bytes_get_a_clean_answer(live_server) -> None:
    latin = "café ü".encode()
    assert _raw_get(live_server.url, "/health", [("X-Request-ID", latin), ("X-Note", b"\xff\xfe")])[0] == 200
    status, body = _raw_get(live_server.url, "/me", [("Authorization", b"Bearer thk_" + latin)])
    assert (status, body["error"]["code"]) == (401, "E9006")


@pytest.fixture
def misconfigured(workerd_pool: WorkerdPool) -> WorkerdServer:
    """A deploy that forgot its D1 binding and its HMAC_SECRET (its /health answers 503)."""
    return workerd_pool.get(MISCONFIGURED_VARS, None, without_database=True)


def test_missing_binding_and_secret_are_documented_5xx(misconfigured: WorkerdServer) -> None:
    since = len(misconfigured.logs())
    with httpx.Client(base_url=misconfigured.url, timeout=30) as client:
        health = client.get("/health")
        assert health.status_code == 503 and health.json()["database"] == "error"
        created = client.post("/admin/api-keys", json={}, headers={"authorization": f"Bearer {ADMIN_TOKEN}"})
        assert created.status_code == 500
        assert created.json()["error"]["code"] == "E9001" and created.json()["error"]["details"]["request_id"]
        session = client.get("/me", headers={"authorization": "Bearer ths_x.y"})
        assert session.status_code == 500
        assert session.json()["error"]["details"]["variable"] == "HMAC_SECRET"
    assert "MissingBinding" in misconfigured.logs()[since:]  # the operator's log says what is wrong
    assert_no_tracebacks(misconfigured, since)
