"""src/entry.py's runtime fast paths (issue 17), driven with a fake `js` module shaped as workerd's FFI behaves.

Inside workerd the adapter builds the JS Response itself, reads headers through one Object.fromEntries call, skips
awaiting a GET's body, logs through console.log and reads each var once per request. On CPython `js` is None and
none of this runs, so these tests put a recording fake in its place; the [workerd] suites prove the real thing.
"""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

import entry
from core.clock import format_time
from core.http import Response
from core.logging import Logger
from tests.test_entry import FakeSdkRequest


class FakeJsObject:
    """js.Object: fromEntries over [name, value] pairs gives a JS object whose to_py() is a dict."""

    calls = 0

    @classmethod
    def fromEntries(cls, pairs: Any) -> Any:
        cls.calls += 1
        entries = dict(pairs)

        class Converted:
            def to_py(self) -> dict[str, Any]:
                return dict(entries)

        return Converted()


class FakeJsResponse:
    made: list[tuple[Any, Any]] = []

    @classmethod
    def new(cls, body: Any, init: Any) -> tuple[str, Any, Any]:
        cls.made.append((body, init))
        return ("js-response", body, init)


class FakeConsole:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def log(self, line: str) -> None:
        self.lines.append(line)


class FakeJs:
    Object = FakeJsObject
    Response = FakeJsResponse

    def __init__(self) -> None:
        self.console = FakeConsole()


def fake_to_js(value: Any, dict_converter: Any = None) -> Any:
    """pyodide.ffi.to_js: a dict through dict_converter (given its items), bytes to a Uint8Array (tagged here)."""
    if isinstance(value, dict):
        return ("object", {key: fake_to_js(item) for key, item in value.items()})
    if isinstance(value, bytes):
        return ("Uint8Array", value)
    return value


@pytest.fixture
def fake_js(monkeypatch: pytest.MonkeyPatch) -> FakeJs:
    fake = FakeJs()
    FakeJsResponse.made = []
    FakeJsObject.calls = 0
    monkeypatch.setattr(entry, "js", fake)
    monkeypatch.setattr(entry, "to_js", fake_to_js)
    return fake


def test_the_js_response_is_built_directly_with_status_and_header_pairs(fake_js: FakeJs) -> None:
    response = Response(201, b'{"ok":true}', {"content-type": "application/json", "x-request-id": "r-1"})
    built = entry.to_runtime_response(response)
    body, init = FakeJsResponse.made[0]
    assert built == ("js-response", body, init)
    assert body == ("Uint8Array", b'{"ok":true}')
    assert init == (
        "object",
        {"status": 201, "headers": [["content-type", "application/json"], ["x-request-id", "r-1"]]},
    )


def test_an_empty_body_is_no_body_at_all(fake_js: FakeJs) -> None:
    entry.to_runtime_response(Response(204, b"", {}))
    body, init = FakeJsResponse.made[0]
    assert body is None and init == ("object", {"status": 204, "headers": []})


def test_without_the_runtime_the_app_response_goes_back_unchanged() -> None:
    response = Response(200, b"x", {})
    assert entry.js is None and entry.to_runtime_response(response) is response


async def test_headers_come_through_one_from_entries_call_and_a_get_body_is_not_awaited(fake_js: FakeJs) -> None:
    request = FakeSdkRequest(
        "GET", "https://a.example/health?x=1", {"X-Request-ID": "w-1", "CF-Connecting-IP": "192.0.2.7"}
    )
    converted = await entry.to_request(request)
    assert FakeJsObject.calls == 1
    assert converted.headers == {"x-request-id": "w-1", "cf-connecting-ip": "192.0.2.7"}
    assert (converted.method, converted.path, converted.query_string, converted.client_ip) == (
        "GET",
        "/health",
        "x=1",
        "192.0.2.7",
    )
    assert converted.body == b"" and not converted.body_unreadable
    assert request.js_object.body_used is False  # nothing awaited


async def test_a_head_body_is_not_awaited_but_a_post_body_is_read(fake_js: FakeJs) -> None:
    head = FakeSdkRequest("HEAD", "https://a.example/health")
    assert (await entry.to_request(head)).body == b"" and head.js_object.body_used is False
    post = FakeSdkRequest("POST", "https://a.example/x", {"content-type": "application/json"}, b'{"a":1}')
    assert (await entry.to_request(post)).body == b'{"a":1}' and post.js_object.body_used is True


def test_logs_go_to_console_log_with_the_same_text_print_would_write(fake_js: FakeJs) -> None:
    printed: list[str] = []
    Logger(printed.append).info("request", request_id="r-1", status=200, note="grüße")
    Logger(entry.console_log).info("request", request_id="r-1", status=200, note="grüße")
    assert fake_js.console.lines == printed
    assert json.loads(printed[0]) == {
        "level": "info",
        "event": "request",
        "request_id": "r-1",
        "status": 200,
        "note": "grüße",
    }


def test_each_var_is_read_from_the_runtime_once_per_request() -> None:
    reads: list[str] = []

    class Env:
        def __getattr__(self, name: str) -> Any:
            reads.append(name)
            if name == "FLAG":
                return "true"
            raise AttributeError(name)

    values = entry.WorkerVars(Env())
    assert [values.get("FLAG"), values.get("FLAG"), values.get("MISSING"), values.get("MISSING")] == [
        "true", "true", None, None,
    ]  # fmt: skip
    assert reads == ["FLAG", "MISSING"]
    # A new request (a new WorkerVars) reads again: nothing is kept across requests.
    assert entry.WorkerVars(Env()).get("FLAG") == "true" and reads == ["FLAG", "MISSING", "FLAG"]


def strftime_format(moment: datetime) -> str:
    """format_time as it was: strftime, which costs ~0.15 ms a call in Pyodide."""
    moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def test_format_time_writes_what_strftime_wrote_to_the_byte() -> None:
    rng = random.Random(17)
    start = datetime(1, 1, 2, tzinfo=UTC)
    span = int((datetime(9999, 12, 30, tzinfo=UTC) - start).total_seconds() * 1_000_000)
    moments = [start + timedelta(microseconds=rng.randrange(span)) for _ in range(20_000)]
    moments += [datetime(2026, 1, 1, 0, 0, 0, 999_999, tzinfo=UTC), datetime(999, 12, 31, 23, 59, 59, tzinfo=UTC)]
    moments += [datetime(2026, 3, 1, 1, 30, tzinfo=timezone(timedelta(hours=5, minutes=30)))]
    for moment in moments:
        assert format_time(moment) == strftime_format(moment), moment
    assert format_time(datetime(2026, 1, 1, 0, 0, 0, 999_999, tzinfo=UTC)) == "2026-01-01T00:00:00.999Z"
