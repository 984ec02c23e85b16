"""Smoke suite over real HTTP against the server started the way `make dev` starts it."""

from __future__ import annotations

import httpx
import pytest

from tests.conftest import ADMIN_TOKEN

pytestmark = pytest.mark.slow


def test_live_server_smoke(live_server):
    with httpx.Client(base_url=live_server.url, timeout=10) as http:
        health = http.get("/health")
        assert health.status_code == 200 and health.json()["status"] == "ok"
        assert health.headers["x-request-id"]

        # Bad input of every kind gets its documented status and the envelope...
        assert http.get("/nope").json()["error"]["code"] == "E9008"
        assert http.delete("/health").status_code == 405
        assert (
            http.post(
                "/admin/api-keys",
                content=b"{",
                headers={"content-type": "application/json", "authorization": f"Bearer {ADMIN_TOKEN}"},
            ).json()["error"]["code"]
            == "E9014"
        )
        assert (
            http.post(
                "/admin/api-keys",
                content=b"x=1",
                headers={"content-type": "text/plain", "authorization": f"Bearer {ADMIN_TOKEN}"},
            ).status_code
            == 415
        )
        huge = http.post(
            "/admin/api-keys", content=b"[" + b"1," * 40_000 + b"1]", headers={"content-type": "application/json"}
        )
        assert huge.status_code == 413
        assert http.get("/me").json()["error"]["code"] == "E9005"
        assert http.get("/me", headers={"authorization": "Bearer forged"}).json()["error"]["code"] == "E9006"

        # ...and the real flow works end to end.
        issued = http.post(
            "/admin/api-keys", json={"email": "live@example.com"}, headers={"authorization": f"Bearer {ADMIN_TOKEN}"}
        )
        assert issued.status_code == 201
        me = http.get("/me", headers={"authorization": f"Bearer {issued.json()['api_key']}"})
        assert me.json()["email"] == "live@example.com"

        # The cron URL wrangler dev uses runs the jobs.
        assert live_server.fire_cron() == []

        assert http.get("/openapi.json").json()["openapi"] == "3.1.0"
        assert http.get("/health").status_code == 200  # still serving


def test_live_server_logs_one_json_line_per_request(live_server):
    import json
    import time

    httpx.get(f"{live_server.url}/health", headers={"x-request-id": "smoke-log-1"}, timeout=10)
    deadline = time.monotonic() + 5  # workerd forwards the Worker's output to wrangler's log shortly after
    while True:
        lines = [json.loads(line) for line in live_server.logs().splitlines() if line.startswith("{")]
        logged = [line for line in lines if line.get("request_id") == "smoke-log-1"]
        if logged or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert [(line["event"], line["status"]) for line in logged] == [("request", 200)]
