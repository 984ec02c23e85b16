"""Applies db/migrations/*.sql with wrangler's own `d1_migrations` bookkeeping, so both tools agree."""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from pathlib import Path

from db.sqlite import SqliteDatabase

# The exact table wrangler creates, so either tool can go first.
BOOKKEEPING_DDL = """CREATE TABLE IF NOT EXISTS d1_migrations(
		id         INTEGER PRIMARY KEY AUTOINCREMENT,
		name       TEXT UNIQUE,
		applied_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP NOT NULL
);"""


@dataclass(frozen=True)
class Migration:
    name: str
    path: Path


def local_d1_filename(database_id: str) -> str:
    """The file name miniflare gives a local D1 database, derived from its database_id."""
    key = hashlib.sha256(b"miniflare-D1DatabaseObject").digest()
    name_part = hmac.new(key, database_id.encode(), hashlib.sha256).digest()[:16]
    tag = hmac.new(key, name_part, hashlib.sha256).digest()[:16]
    return (name_part + tag).hex() + ".sqlite"


def local_d1_path(project_root: Path, database_id: str) -> Path:
    """Where `wrangler d1 … --local` keeps this database, so both tools work on the same data."""
    folder = project_root / ".wrangler" / "state" / "v3" / "d1" / "miniflare-D1DatabaseObject"
    return folder / local_d1_filename(database_id)


def discover(migrations_dir: Path) -> list[Migration]:
    return [Migration(path.name, path) for path in sorted(migrations_dir.glob("*.sql"))]


def applied(database: SqliteDatabase) -> set[str]:
    database.connection.execute(BOOKKEEPING_DDL)
    rows = database.connection.execute("SELECT name FROM d1_migrations").fetchall()
    return {row["name"] for row in rows}


def pending(database: SqliteDatabase, migrations_dir: Path) -> list[Migration]:
    done = applied(database)
    return [migration for migration in discover(migrations_dir) if migration.name not in done]


def apply(database: SqliteDatabase, migrations_dir: Path) -> list[str]:
    """Apply every pending migration, each in its own transaction with its bookkeeping row."""
    names: list[str] = []
    for migration in pending(database, migrations_dir):
        sql = migration.path.read_text(encoding="utf-8")
        escaped = migration.name.replace("'", "''")
        database.executescript(f"{sql}\nINSERT INTO d1_migrations (name) VALUES ('{escaped}');")
        names.append(migration.name)
    return names
