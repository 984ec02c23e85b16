"""Local configuration as `wrangler dev` builds it: wrangler.toml `[vars]` overlaid by `.dev.vars`."""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass
from pathlib import Path

from db.migrations import local_d1_path

PROJECT_ROOT = Path(__file__).resolve().parents[2]
D1_BINDING = "TATTLEHASH_DB"


@dataclass(frozen=True)
class LocalConfig:
    vars: dict[str, str]
    database_path: Path
    migrations_dir: Path


def parse_dotenv(text: str) -> dict[str, str]:
    """KEY=VALUE lines; '#' comments; optional single or double quotes around the value."""
    values: dict[str, str] = {}
    for raw_line in text.splitlines():
        line = raw_line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.partition("=")
        key, value = key.strip().removeprefix("export ").strip(), value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in {"'", '"'}:
            value = value[1:-1]
        values[key] = value
    return values


def load(root: Path = PROJECT_ROOT, *, environment: str | None = None) -> LocalConfig:
    manifest = tomllib.loads((root / "wrangler.toml").read_text(encoding="utf-8"))
    section = manifest.get("env", {}).get(environment, {}) if environment else manifest
    values = {key: str(value) for key, value in manifest.get("vars", {}).items()}
    if environment:
        values.update({key: str(value) for key, value in section.get("vars", {}).items()})
    # TATTLEHASH_DEV_VARS points at another vars file (tests, benches); the default is wrangler's .dev.vars.
    dev_vars = Path(os.environ.get("TATTLEHASH_DEV_VARS") or root / ".dev.vars")
    if dev_vars.exists():
        values.update(parse_dotenv(dev_vars.read_text(encoding="utf-8")))
    database = next(db for db in manifest["d1_databases"] if db["binding"] == D1_BINDING)
    override = os.environ.get("TATTLEHASH_DB_PATH")
    path = Path(override) if override else local_d1_path(root, database["database_id"])
    return LocalConfig(values, path, root / database.get("migrations_dir", "db/migrations"))
