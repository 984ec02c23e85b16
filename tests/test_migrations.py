"""Migrations: the runner applies the schema with wrangler's bookkeeping, and real wrangler agrees both ways."""

import os
import shutil
import sqlite3
import subprocess
from pathlib import Path

import pytest

from db import migrations
from db.sqlite import SqliteDatabase
from local.config import PROJECT_ROOT

MIGRATIONS = PROJECT_ROOT / "db" / "migrations"
WRANGLER = PROJECT_ROOT / "node_modules" / ".bin" / "wrangler"
DATABASE_ID = "6f1c2a7e-3b7d-4c1e-9a55-1d9e0c7b2f10"

EXPECTED_TABLES = {
    "users", "api_keys", "wallets", "wallet_challenges", "challenges", "fire_configs", "enforced_configs",
    "challenge_wallet_requirements", "funds_requirements", "funds_attestations", "stakes", "ledger_entries",
    "challenge_party_actions", "attestations", "challenge_status_history", "events", "webhook_endpoints",
    "webhook_deliveries", "webhook_attempts", "notifications", "idempotency_keys", "d1_migrations",
}  # fmt: skip


def tables(path: Path) -> set[str]:
    with sqlite3.connect(path) as connection:
        rows = connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
    return {name for (name,) in rows}


def applied_names(path: Path) -> list[str]:
    with sqlite3.connect(path) as connection:
        return [name for (name,) in connection.execute("SELECT name FROM d1_migrations ORDER BY id")]


def test_local_d1_path_matches_miniflare_rule():
    # The rule from DESIGN.md, checked against the file wrangler itself created for this id.
    assert migrations.local_d1_filename("00000000-0000-4000-8000-000000000001") == (
        "37202af4a48e51a6f9bf1676145f85cdbaaf76a4a51b95f5120b328bf5460e72.sqlite"
    )


def test_runner_applies_everything_once(tmp_path):
    database = SqliteDatabase(tmp_path / "db.sqlite")
    names = migrations.apply(database, MIGRATIONS)
    assert names == [path.name for path in sorted(MIGRATIONS.glob("*.sql"))]
    assert tables(tmp_path / "db.sqlite") >= EXPECTED_TABLES
    assert migrations.apply(database, MIGRATIONS) == []
    assert applied_names(tmp_path / "db.sqlite") == names


def test_failed_migration_leaves_nothing_behind(tmp_path):
    folder = tmp_path / "migrations"
    folder.mkdir()
    (folder / "0001_ok.sql").write_text("CREATE TABLE a (id INTEGER);")
    (folder / "0002_broken.sql").write_text("CREATE TABLE b (id INTEGER);\nCREATE TABLE a (id INTEGER);")
    database = SqliteDatabase(tmp_path / "db.sqlite")
    with pytest.raises(Exception, match="already exists"):
        migrations.apply(database, folder)
    assert "b" not in tables(tmp_path / "db.sqlite")
    assert applied_names(tmp_path / "db.sqlite") == ["0001_ok.sql"]


def test_check_constraints_refuse_bad_rows(tmp_path):
    database = SqliteDatabase(tmp_path / "db.sqlite")
    migrations.apply(database, MIGRATIONS)
    with pytest.raises(sqlite3.IntegrityError):
        database.connection.execute(
            "INSERT INTO users (id, phone, created_at, updated_at) VALUES ('u', '555-1234', 'x', 'x')"
        )
    with pytest.raises(sqlite3.IntegrityError):
        database.connection.execute(
            "INSERT INTO wallets (address, user_id, first_verified_at, last_verified_at)"
            " VALUES ('0xABC', 'nobody', 'x', 'x')"
        )


def _wrangler_project(tmp_path: Path) -> Path:
    project = tmp_path / "project"
    project.mkdir()
    shutil.copy(PROJECT_ROOT / "wrangler.toml", project / "wrangler.toml")
    shutil.copytree(MIGRATIONS, project / "db" / "migrations")
    (project / "node_modules").symlink_to(PROJECT_ROOT / "node_modules")
    return project


def _wrangler_apply(project: Path) -> str:
    environment = {**os.environ, "CI": "true", "WRANGLER_SEND_METRICS": "false", "NO_COLOR": "1"}
    result = subprocess.run(
        [str(WRANGLER), "d1", "migrations", "apply", "tattlehash-db", "--local"],
        cwd=project, env=environment, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


@pytest.mark.slow
def test_wrangler_then_runner_finds_nothing_to_apply(tmp_path):
    project = _wrangler_project(tmp_path)
    _wrangler_apply(project)
    path = migrations.local_d1_path(project, DATABASE_ID)
    assert path.exists(), "wrangler wrote its database somewhere else than the path rule says"
    assert tables(path) >= EXPECTED_TABLES
    assert migrations.pending(SqliteDatabase(path), project / "db" / "migrations") == []


@pytest.mark.slow
def test_runner_then_wrangler_finds_nothing_to_apply(tmp_path):
    project = _wrangler_project(tmp_path)
    path = migrations.local_d1_path(project, DATABASE_ID)
    path.parent.mkdir(parents=True)
    names = migrations.apply(SqliteDatabase(path), project / "db" / "migrations")
    assert names
    output = _wrangler_apply(project)
    assert "No migrations to apply" in output
    assert applied_names(path) == names
