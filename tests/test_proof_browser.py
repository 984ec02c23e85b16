"""The proof page in a real browser (Debian's headless Chromium): what a person sees, plus a screenshot."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import httpx
import pytest

from local.config import PROJECT_ROOT
from tests.conftest import ADMIN_TOKEN

pytestmark = pytest.mark.slow
SCREENSHOT = PROJECT_ROOT / "artifacts" / "proof-page.png"
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync", "--hide-scrollbars",
]  # fmt: skip


def chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    assert binary, "Chromium is installed by `make test` (Debian package chromium)"
    return subprocess.run(
        [binary, *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}", *args],
        capture_output=True, text=True, timeout=90, check=False,
    )  # fmt: skip


def test_proof_page_in_chromium(tmp_path, live_server):
    with httpx.Client(base_url=live_server.url, timeout=10) as http:
        key = http.post("/admin/api-keys", json={}, headers={"authorization": f"Bearer {ADMIN_TOKEN}"}).json()[
            "api_key"
        ]
        auth = {"authorization": f"Bearer {key}"}
        title = "Climb Kilimanjaro <b>& back</b>"
        challenge = http.post("/challenges", json={"mode": "SOLO", "title": title}, headers=auth).json()
        done = http.post(f"/challenges/{challenge['id']}/confirm", json={}, headers=auth).json()
    url = f"{live_server.url}/proof/{challenge['id']}"

    dom = chromium(tmp_path, "--dump-dom", url)
    assert dom.returncode == 0, dom.stderr[-2000:]
    text = re.sub(r"<[^>]+>", " ", dom.stdout)
    text = re.sub(r"\s+", " ", text)
    # What a person reads: the title as typed (escaped, not rendered as markup), mode, status, hashes.
    assert "Climb Kilimanjaro &lt;b&gt;&amp; back&lt;/b&gt;" in dom.stdout
    assert "<b>&amp; back</b>" not in dom.stdout
    assert "SOLO · COMPLETED" in text
    assert done["initiator_hash"] in text and done["final_hash"] in text
    assert "<svg" in dom.stdout and 'aria-label="QR code' in dom.stdout

    SCREENSHOT.parent.mkdir(exist_ok=True)
    shot = chromium(tmp_path, f"--screenshot={SCREENSHOT}", "--window-size=900,1200", url)
    assert shot.returncode == 0, shot.stderr[-2000:]
    data = SCREENSHOT.read_bytes()
    assert data.startswith(b"\x89PNG") and len(data) > 10_000  # a real rendering, not a blank page
