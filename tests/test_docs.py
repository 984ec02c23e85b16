"""Docs stay true: API reference current, README covers routes and variables, no leftover markers, real security map."""

from __future__ import annotations

import importlib.util
import io
import re
import sys
import tokenize
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from api.routes import ROUTES

ROOT = Path(__file__).resolve().parents[1]
SCANNED_DIRS = ("src", "bench", "scripts", "tests")
# Comment syntaxes of the non-Python sources in those folders (k6 script, wrk Lua, shell, Solidity fixtures).
OTHER_SOURCES = {".js": ("//", "/*", "*"), ".lua": ("--",), ".sh": ("#",), ".sol": ("//", "/*", "*"), ".sql": ("--",)}
# Assembled so that this file's own source never spells a marker.
MARKER = re.compile(r"\b(?:" + "|".join(("TO" + "DO", "FIX" + "ME", "X" * 3)) + r")\b")
TEST_REF = re.compile(r"`(tests/[\w/]+\.py)(?:::(\w+))?`")


def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("api_reference", ROOT / "scripts" / "api_reference.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


# ---- (a) docs/api.md is what the generator writes today


def test_api_reference_is_up_to_date(capsys: pytest.CaptureFixture[str]) -> None:
    assert _generator().main(["--check"]) == 0, capsys.readouterr().err


def test_check_mode_fails_on_a_stale_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    generator = _generator()
    stale = tmp_path / "api.md"
    stale.write_text("# API reference\n", encoding="utf-8")
    assert generator.main(["--check", "--output", str(stale)]) == 1
    assert "out of date" in capsys.readouterr().err
    assert generator.main(["--output", str(stale)]) == 0
    assert generator.main(["--check", "--output", str(stale)]) == 0


def test_api_reference_covers_every_documented_operation() -> None:
    text = (ROOT / "docs" / "api.md").read_text(encoding="utf-8")
    for route in ROUTES:
        if route.include_in_schema:
            assert f"### `{route.method} {route.path}`" in text, (route.method, route.path)


# ---- (b) the README lists every route with its method


def test_readme_lists_every_route() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    rows = [line for line in readme.splitlines() if line.startswith("|")]
    missing = [
        f"{route.method} {route.path}"
        for route in ROUTES
        if not any(f"`{route.path}`" in row and re.search(rf"\|\s*{route.method}\s*\|", row) for row in rows)
    ]
    assert not missing, f"README.md has no endpoint table row for: {missing}"


def test_readme_starts_with_the_two_commands() -> None:
    lines = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    assert lines[3].startswith("make dev") and lines[4].startswith("make test")


_ENV_READS = (
    r"env\.(?:get|int|bool|flag|secret)\(\s*[\"']([A-Z][A-Z0-9_]+)[\"']",
    r"self\.secret\(\"([A-Z][A-Z0-9_]+)\"",
    r"timeout_setting\([^,]+,\s*\"([A-Z][A-Z0-9_]+)\"",
    r"^[A-Z_]*_ENV\s*=\s*\"([A-Z][A-Z0-9_]+)\"",
    r"os\.environ\.get\(\"([A-Z][A-Z0-9_]+)\"",
)


def _variables_read_by_the_code() -> set[str]:
    from chain import networks
    from core import flags, ratelimit

    names = set(flags.ALL_FLAGS) | {network.env_var for network in networks.NETWORKS}
    names |= {legacy for names in networks._LEGACY_ENV_VARS.values() for legacy in names}
    names |= {f"RATE_LIMIT_{group.upper()}_PER_MINUTE" for group in ratelimit.GROUPS}
    for path in (ROOT / "src").rglob("*.py"):
        source = path.read_text(encoding="utf-8")
        for pattern in _ENV_READS:
            names |= set(re.findall(pattern, source, re.MULTILINE))
    return names


def test_readme_documents_every_variable_the_code_reads() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    names = _variables_read_by_the_code()
    assert {"HMAC_SECRET", "ADMIN_TOKEN", "RPC_URL_ETH_MAINNET", "WEBHOOK_TIMEOUT_SECONDS"} <= names
    missing = sorted(name for name in names if f"`{name}`" not in readme)
    assert not missing, f"README.md does not document: {missing}"


# ---- (c) no leftover to-do markers in comments or docstrings


def _python_comments(path: Path) -> Iterator[tuple[int, str]]:
    source = path.read_text(encoding="utf-8")
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type == tokenize.COMMENT or (token.type == tokenize.STRING and token.string.endswith(('"""', "'''"))):
            yield token.start[0], token.string


def _other_comments(path: Path, starts: tuple[str, ...]) -> Iterator[tuple[int, str]]:
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        stripped = line.strip()
        if stripped.startswith(starts):
            yield number, stripped
            continue
        positions = [line.find(mark) for mark in starts if mark != "*" and mark in line]
        if positions:
            yield number, line[min(positions) :]


def _sources() -> Iterator[Path]:
    for folder in SCANNED_DIRS:
        for path in sorted((ROOT / folder).rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts:
                yield path


def test_no_marker_comments_in_the_code() -> None:
    found = []
    for path in _sources():
        if path.suffix == ".py":
            comments = _python_comments(path)
        elif path.suffix in OTHER_SOURCES:
            comments = _other_comments(path, OTHER_SOURCES[path.suffix])
        else:
            continue
        found += [f"{path.relative_to(ROOT)}:{line}" for line, text in comments if MARKER.search(text)]
    assert not found, f"resolve or remove these comments: {found}"


def test_the_marker_scan_sees_comments_but_not_code(tmp_path: Path) -> None:
    marker = "TO" + "DO"
    sample = f'"""Doc."""\nvalue = "{marker}"  # fine\n# {marker}: later\ndef f():\n    """{marker} here."""\n'
    path = tmp_path / "sample.py"
    path.write_text(sample, encoding="utf-8")
    assert [line for line, text in _python_comments(path) if MARKER.search(text)] == [3, 5]
    script = tmp_path / "sample.js"
    script.write_text(f'const a = "{marker}";\nrun(); // {marker} later\n', encoding="utf-8")
    assert [line for line, text in _other_comments(script, OTHER_SOURCES[".js"]) if MARKER.search(text)] == [2]


# ---- (d) docs/security.md: every checklist item names tests that exist


def _checklist_sections() -> dict[str, str]:
    text = (ROOT / "docs" / "security.md").read_text(encoding="utf-8")
    checklist = text.split("\n## Checklist", 1)[1].split("\n## ", 1)[0]
    sections = re.split(r"^### ", checklist, flags=re.MULTILINE)[1:]
    return {section.splitlines()[0].strip(): section for section in sections}


def test_security_checklist_covers_the_seed_items() -> None:
    titles = " ".join(_checklist_sections()).lower()
    for item in (
        "inputs validated",
        "parameterized",
        "no secrets in logs",
        "rate limiting",
        "cors",
        "hmac signatures on webhooks",
        "nonces",
        "balance",
    ):
        assert item in titles, item


def test_every_security_item_names_existing_tests() -> None:
    sections = _checklist_sections()
    assert len(sections) >= 14
    for title, body in sections.items():
        references = TEST_REF.findall(body)
        assert references, f"{title!r} names no test"
        for file_name, function in references:
            path = ROOT / file_name
            assert path.is_file(), f"{title!r}: {file_name} does not exist"
            if function:
                pattern = rf"^\s*(?:async\s+)?def {function}\("
                assert re.search(pattern, path.read_text(encoding="utf-8"), re.MULTILINE), (
                    f"{title!r}: {file_name} has no test {function}"
                )
