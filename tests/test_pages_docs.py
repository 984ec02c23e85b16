"""The contract in docs/ stays true to the code (errors, events, state machines, limits) and, with the README,
points only at files inside the repository."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from challenges import modes
from core.errors import ERRORS
from core.ratelimit import GROUPS
from relay import delivery, notify
from relay.outbox import EVENT_TYPES

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
CONTRACT = ("concepts.md", "state-machines.md", "events.md", "errors.md", "limits.md", "webhooks.md", "pages.md")
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def read(name: str) -> str:
    return (DOCS / name).read_text(encoding="utf-8")


def markdown_files() -> list[Path]:
    return [ROOT / "README.md", *sorted(DOCS.glob("*.md"))]


@pytest.mark.parametrize("path", markdown_files(), ids=lambda path: path.name)
def test_links_stay_inside_the_repository(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    assert "../shared" not in text and "SPEC.md" not in text
    for target in LINK.findall(text):
        if re.match(r"^(https?:|mailto:|#)", target):
            continue
        resolved = (path.parent / target.split("#", 1)[0]).resolve()
        assert resolved.is_relative_to(ROOT), f"{path.name}: {target} leaves the repository"
        assert resolved.exists(), f"{path.name}: {target} does not exist"


def test_the_readme_links_every_contract_file() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for name in CONTRACT:
        assert f"](docs/{name})" in readme, name


def test_every_error_code_is_documented_with_its_status() -> None:
    rows = re.findall(r"^\| `(E\d{4})` \| (\d{3}) \| ([^|]+?) \|", read("errors.md"), flags=re.M)
    assert {code: (int(status), message) for code, status, message in rows} == {
        code: (spec.status, spec.message) for code, spec in ERRORS.items()
    }


def test_every_event_type_has_its_section() -> None:
    documented = re.findall(r"^### `([a-z_.]+)`$", read("events.md"), flags=re.M)
    assert documented == list(EVENT_TYPES)


def test_the_state_machine_tables_are_the_code() -> None:
    documented: set[tuple[str, str, str]] = set()
    mode = None
    for line in read("state-machines.md").splitlines():
        heading = re.match(r"^## ([A-Z]+)$", line)
        if heading:
            mode = heading.group(1) if heading.group(1) in modes.MODES else None
            continue
        row = re.match(r"^\| ([A-Z_]+) \| ([A-Z_]+) \| ", line)
        if mode and row and row.group(1) in modes.STATUSES:
            documented.add((mode, row.group(1), row.group(2)))
    assert documented == {
        (mode, before, after)
        for mode, table in modes.TRANSITIONS.items()
        for before, targets in table.items()
        for after in targets
    }


def _schedule(delays: tuple[int, ...]) -> str:
    def words(seconds: int) -> str:
        return f"{seconds // 3600} h" if seconds >= 3600 else f"{seconds // 60} min"

    return ", ".join(words(seconds) for seconds in delays)


def test_limits_and_retry_schedules_are_the_code() -> None:
    limits = read("limits.md")
    for group, (limit, per) in GROUPS.items():
        row = re.search(rf"^\| `{group}` \| [^|]+ \| (\d+) \| ([^|]+) \|$", limits, flags=re.M)
        assert row and int(row.group(1)) == limit, group
        assert row.group(2).strip().startswith("client IP" if per == "ip" else "user"), group
    webhooks = _schedule(delivery.RETRY_DELAYS)
    assert webhooks == "1 min, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h"
    assert f"after about {webhooks} (" in limits and f"**{webhooks}**" in read("webhooks.md")
    assert f"{delivery.MAX_ATTEMPTS} attempts" in limits and f"{notify.MAX_ATTEMPTS} attempts" in limits
    assert f"after about {_schedule(notify.RETRY_DELAYS)}, then FAILED" in limits
