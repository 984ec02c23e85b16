"""SSRF by host name (issue 12 item 11): names of local and metadata services are refused at registration; on
CPython each attempt resolves the host once, refuses non-public answers and dials the checked address; the
owner never sees what a receiver answered, only a status and a classified reason.
"""

from __future__ import annotations

import shutil
import socket
import ssl
import subprocess
import threading
from pathlib import Path

import pytest

from db import migrations, sqlite
from db.sqlite import SqliteDatabase
from relay import egress
from relay.jobs import dispatch_pending
from tests import test_relay_support as support
from tests.conftest import MIGRATIONS
from tests.test_relay_support import Reply, attempts_of, deliveries_of, register, rows, solo

insecure_webhooks, webhook_clock, receivers = support.insecure_webhooks, support.webhook_clock, support.receivers


@pytest.fixture
async def alice(make_user):
    return await make_user(email="alice@example.com")


class FakeDns:
    """Stands in for getaddrinfo: name → addresses, and a record of every lookup."""

    def __init__(self, answers: dict[str, list[str]]) -> None:
        self.answers = answers
        self.lookups: list[tuple[str, int]] = []

    async def __call__(self, host: str, port: int) -> list[str]:
        self.lookups.append((host, port))
        if host not in self.answers:
            raise egress.ResolutionFailed(host)
        return self.answers[host]


@pytest.fixture
def dns(monkeypatch: pytest.MonkeyPatch) -> FakeDns:
    fake = FakeDns({})
    monkeypatch.setattr(egress, "resolve", fake)
    return fake


class Listener:
    """A bare TCP socket on 127.0.0.1 that counts the connections it accepts (and answers none)."""

    def __init__(self) -> None:
        self.socket = socket.create_server(("127.0.0.1", 0))
        self.socket.settimeout(0.1)
        self.port = self.socket.getsockname()[1]
        self.accepted = 0
        self._running = True
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while self._running:
            try:
                connection, _ = self.socket.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.accepted += 1
            connection.close()

    def stop(self) -> None:
        self._running = False
        self._thread.join()
        self.socket.close()


@pytest.fixture
def listener():
    started = Listener()
    yield started
    started.stop()


# -- registration ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "https://localhost./hook",
        "https://localhost.localdomain/hook",
        "https://LOCALHOST.LOCALDOMAIN./hook",
        "https://localhost4.localdomain4/hook",
        "https://app.localhost/hook",
        "https://127.0.0.1.nip.io/hook",
        "https://hooks.10-0-0-1.sslip.io/hook",
        "https://8.8.8.8.nip.io/hook",  # echo services are refused whatever they spell
        "https://localtest.me/hook",
        "https://hooks.127.0.0.1.example.com/hook",
        "https://ip-169-254-169-254.example.com/hook",
        "https://10.1.2.3.example.com/hook",
        "https://metadata.google.internal./computeMetadata/v1/",
        "https://metadata.goog/computeMetadata/v1/",
        "https://metadata.azure.com/metadata/instance",
        "https://instance-data.ec2.internal/latest/meta-data/",
        "https://router.home.arpa/hook",
        "https://1.0.0.127.in-addr.arpa/hook",
        "https://[64:ff9b::7f00:1]/hook",  # NAT64 of 127.0.0.1
        "https://[2002:a00:1::]/hook",  # 6to4 of 10.0.0.1
    ],
)
async def test_loopback_and_metadata_host_names_are_refused_at_registration(client, alice, services, url):
    response = await client.post("/webhooks", json={"url": url}, token=alice[1])

    assert (response.status, response.error_code) == (400, "E6001"), response.text
    assert response.json()["error"]["details"]["field"] == "url"
    assert await rows(services, "SELECT id FROM webhook_endpoints") == []


async def test_development_mode_still_admits_only_its_localhost_forms(client, alice, env_vars):
    env_vars["ALLOW_INSECURE_WEBHOOKS"] = "true"
    for url in ("http://localhost:9000/hook", "http://localhost.:9000/hook", "http://127.0.0.1:9000/hook"):
        assert (await client.post("/webhooks", json={"url": url}, token=alice[1])).status == 201, url
    for url in ("http://localhost.localdomain:9000/hook", "https://127.0.0.1.nip.io/hook", "https://lvh.me/hook"):
        response = await client.post("/webhooks", json={"url": url}, token=alice[1])
        assert response.error_code == "E6001", url


@pytest.mark.parametrize(
    "url",
    [
        "https://hooks.example.com/hook",
        "https://ec2-54-210-1-2.compute-1.amazonaws.com/hook",  # spells a public address: fine
        "https://api.v2.example.io/hook",
        "https://localhost-tools.example.com/hook",
    ],
)
async def test_public_names_are_still_accepted(client, alice, url):
    assert (await client.post("/webhooks", json={"url": url}, token=alice[1])).status == 201


# -- delivery: resolve once, check, dial the checked address -----------------------------------------------


@pytest.mark.parametrize(
    "answer",
    [
        ["127.0.0.1"],
        ["10.0.0.7"],
        ["169.254.169.254"],
        ["100.64.0.1"],  # CGNAT
        ["::1"],
        ["fd00::1"],
        ["::ffff:127.0.0.1"],
        ["93.184.215.14", "127.0.0.1"],  # one bad answer refuses them all
    ],
)
async def test_a_name_resolving_to_a_non_public_address_is_never_dialled(
    client, services, alice, dns, listener, answer
):
    dns.answers["hooks.example.com"] = answer
    _, token = alice
    # A valid public name at registration, whose DNS answer later points inside (rebinding, or a takeover).
    endpoint = await register(client, token, url=f"https://hooks.example.com:{listener.port}/hook")
    await solo(client, token)

    report = await dispatch_pending(services)

    assert listener.accepted == 0
    assert dns.lookups == [("hooks.example.com", listener.port)]
    assert report["webhooks_retrying"] == 1
    listed = (await client.get(f"/webhooks/{endpoint['id']}/deliveries", token=token)).json()
    (item,) = listed["items"]
    assert (item["status"], item["last_status_code"], item["last_error"]) == ("PENDING", None, "blocked_address")
    assert [(a["status_code"], a["error"]) for a in item["attempts"]] == [(None, "blocked_address")]


async def test_development_loopback_is_dialled_at_the_checked_address(client, services, receivers, alice, dns):
    receiver = receivers()
    port = receiver.server.server_address[1]
    _, token = alice
    endpoint = await register(client, token, receiver, url=f"http://localhost:{port}/hook")

    # The name resolves (once) to 127.0.0.2, where nothing listens: the attempt fails there. Had anything
    # looked "localhost" up again (the system answer is 127.0.0.1), the receiver would have got it.
    dns.answers["localhost"] = ["127.0.0.2"]
    await solo(client, token)
    await dispatch_pending(services)
    assert receiver.received == []
    (row,) = await deliveries_of(services, endpoint["id"])
    assert row["last_error"] == "connection_refused"

    # Mapped to the receiver's own address the same delivery goes through, with the original Host header.
    dns.answers["localhost"] = ["127.0.0.1"]
    services.clock.advance(120)
    await dispatch_pending(services)
    assert [record.error for record in receiver.received] == [None]
    assert receiver.received[0].headers["host"] == f"localhost:{port}"

    # Development mode admits loopback for its localhost forms only: a private answer is still refused.
    dns.answers["localhost"] = ["192.168.1.20"]
    await solo(client, token, "second")
    await dispatch_pending(services)
    assert len(receiver.received) == 1
    latest = (await deliveries_of(services, endpoint["id"]))[-1]
    assert latest["last_error"] == "blocked_address"


async def test_development_mode_does_not_open_loopback_to_public_names(
    client, services, alice, dns, listener, env_vars
):
    env_vars["ALLOW_INSECURE_WEBHOOKS"] = "true"
    dns.answers["hooks.example.com"] = ["127.0.0.1"]
    _, token = alice
    endpoint = await register(client, token, url=f"https://hooks.example.com:{listener.port}/hook")
    await solo(client, token)

    await dispatch_pending(services)

    assert listener.accepted == 0
    (row,) = await deliveries_of(services, endpoint["id"])
    assert row["last_error"] == "blocked_address"


def _self_signed(tmp_path: Path, name: str) -> tuple[Path, Path]:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "1",
         "-subj", f"/CN={name}", "-addext", f"subjectAltName=DNS:{name}", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command to make a certificate")
async def test_tls_names_the_host_while_dialling_the_checked_address(
    client, services, receivers, alice, dns, tmp_path, monkeypatch
):
    cert, key = _self_signed(tmp_path, "localhost")
    receiver = receivers()
    server_side = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_side.load_cert_chain(cert, key)
    names: list[str | None] = []
    server_side.sni_callback = lambda connection, name, context: names.append(name)
    receiver.server.socket = server_side.wrap_socket(receiver.server.socket, server_side=True)
    trusting = ssl.create_default_context(cafile=str(cert))
    monkeypatch.setattr(egress, "_tls_context", lambda: trusting)
    dns.answers["localhost"] = ["127.0.0.1"]
    port = receiver.server.server_address[1]
    _, token = alice
    await register(client, token, receiver, url=f"https://localhost:{port}/hook")
    await solo(client, token)

    await dispatch_pending(services)

    # The certificate was checked against the name, over a connection to the address the resolver gave.
    assert names == ["localhost"]
    assert [record.error for record in receiver.received] == [None]
    assert receiver.received[0].headers["host"] == f"localhost:{port}"
    assert dns.lookups == [("localhost", port)]


# -- what the owner sees -------------------------------------------------------------------------------------

LEAK = b"upstream said: sk_live_4eC39HqLyjWDarjtT1zdp7dc; password=hunter2 at 10.0.3.7"


async def test_a_receivers_answer_is_never_shown_to_the_owner(client, services, receivers, alice, log_sink):
    receiver = receivers(lambda index: Reply(500, body=LEAK, headers={"content-type": "text/plain"}))
    _, token = alice
    endpoint = await register(client, token, receiver)
    await solo(client, token)
    await dispatch_pending(services)

    response = await client.get(f"/webhooks/{endpoint['id']}/deliveries", token=token)

    assert response.status == 200
    (item,) = response.json()["items"]
    assert (item["last_status_code"], item["last_error"]) == (500, "http_status")
    assert [(a["status_code"], a["error"]) for a in item["attempts"]] == [(500, "http_status")]
    for secretish in ("sk_live", "hunter2", "10.0.3.7", "upstream"):
        assert secretish not in response.text
        assert secretish not in "\n".join(log_sink.lines)
    stored = await rows(services, "SELECT error FROM webhook_attempts") + await rows(
        services, "SELECT last_error AS error FROM webhook_deliveries"
    )
    assert {row["error"] for row in stored} == {"http_status"}


async def test_errors_recorded_before_are_shown_classified(client, services, receivers, alice):
    receiver = receivers(lambda index: Reply(503))
    _, token = alice
    endpoint = await register(client, token, receiver)
    await solo(client, token)
    await dispatch_pending(services)
    (row,) = await deliveries_of(services, endpoint["id"])
    # As the code before this change wrote them: the receiver's words in the error.
    legacy = "HTTP 503: " + LEAK.decode()
    await services.db.prepare("UPDATE webhook_attempts SET error = ?").bind(legacy).run()
    await services.db.prepare("UPDATE webhook_deliveries SET last_error = ?").bind(legacy).run()
    assert (await attempts_of(services, row["id"]))[0]["error"] == legacy

    response = await client.get(f"/webhooks/{endpoint['id']}/deliveries", token=token)

    (item,) = response.json()["items"]
    assert item["last_error"] == "http_status" and item["attempts"][0]["error"] == "http_status"
    assert "sk_live" not in response.text


def test_migration_0009_rewrites_stored_errors_to_reasons(tmp_path):
    earlier = tmp_path / "earlier"
    earlier.mkdir()
    for path in sorted(MIGRATIONS.glob("*.sql")):
        if path.name < "0009":
            shutil.copy(path, earlier / path.name)
    database = SqliteDatabase(tmp_path / "db.sqlite")
    migrations.apply(database, earlier)
    legacy = {
        "HTTP 500: " + LEAK.decode(): "http_status",
        "timeout after 10 s": "timeout",
        "connection error (ConnectError): [Errno 111] Connection refused": "connection_refused",
        "connection error (RemoteProtocolError): Server disconnected": "connection_error",
        "URL not allowed: only https URLs are allowed": "url_not_allowed",
        "event payload is not valid JSON": "invalid_payload",
        "request failed (ValueError)": "request_failed",
    }
    with sqlite.connect(tmp_path / "db.sqlite") as connection:
        connection.execute("INSERT INTO users (id, created_at, updated_at) VALUES ('u', 't', 't')")
        connection.execute(
            "INSERT INTO webhook_endpoints (id, user_id, url, secret, status, created_at, updated_at)"
            " VALUES ('w', 'u', 'https://hooks.example.com', 'whsec_AAAA', 'ACTIVE', 't', 't')"
        )
        for index, text in enumerate(legacy):
            connection.execute(
                "INSERT INTO events (id, type, payload, created_at) VALUES (?, 'wallet.verified', '{}', 't')",
                (f"e{index}",),
            )
            connection.execute(
                "INSERT INTO webhook_deliveries (id, endpoint_id, event_id, status, last_error, created_at, updated_at)"
                " VALUES (?, 'w', ?, 'FAILED', ?, 't', 't')",
                (f"d{index}", f"e{index}", text),
            )
            connection.execute(
                "INSERT INTO webhook_attempts (id, delivery_id, attempt_number, started_at, duration_ms, error)"
                " VALUES (?, ?, 1, 't', 1, ?)",
                (f"a{index}", f"d{index}", text),
            )

    # Later migrations may follow; 0009 must be among those applied now.
    assert any(name.startswith("0009") for name in migrations.apply(database, MIGRATIONS))

    with sqlite.connect(tmp_path / "db.sqlite") as connection:
        attempts = dict(connection.execute("SELECT id, error FROM webhook_attempts").fetchall())
        last = dict(connection.execute("SELECT id, last_error FROM webhook_deliveries").fetchall())
        columns = {row[1] for row in connection.execute("PRAGMA table_info(webhook_endpoints)")}
    expected = list(legacy.values())
    assert [attempts[f"a{index}"] for index in range(len(legacy))] == expected
    assert [last[f"d{index}"] for index in range(len(legacy))] == expected
    assert {"previous_secret", "previous_secret_until"} <= columns
