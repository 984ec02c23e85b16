"""Build python_modules/ (what `wrangler dev` runs and `wrangler deploy` uploads) from pyproject.toml's pins.

The Worker runs on Pyodide 0.28 (Python 3.13, ABI pyodide_2025_0_wasm32). Its runtime dependencies and
their dependencies are pinned to exactly what `.venv` resolved from pyproject.toml; markers are evaluated
for the Pyodide target. WebAssembly builds (pydantic-core, pycryptodome) and Pyodide's httpx (with its
`fetch` transport: PyPI's httpx cannot make a request in workerd) come from the offline edge kit's
wheelhouse when it is there, else from Pyodide's package index; everything else from PyPI.

Usage: .venv/bin/python scripts/build_bundle.py [--wheelhouse DIR] [--out DIR]
"""

from __future__ import annotations

import argparse
import importlib.metadata as metadata
import json
import shutil
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_WHEELHOUSE = ROOT.parent / "shared" / "edge" / "wheelhouse"
PYODIDE_INDEX = "https://index.pyodide.org/0.28.3"
PLATFORM = "pyodide_2025_0_wasm32"
# Packages whose PyPI build cannot run in workerd: they must come from Pyodide's builds.
PYODIDE_BUILDS = {"httpx", "pydantic-core", "pycryptodome"}
# cytoolz is C; eth-utils falls back to the pure-Python toolz when it is missing.
STAND_INS = {"cytoolz": "toolz"}
# Marker environment of the Workers runtime (Pyodide 0.28).
TARGET = {
    "python_version": "3.13",
    "python_full_version": "3.13.2",
    "sys_platform": "emscripten",
    "platform_system": "Emscripten",
    "platform_machine": "wasm32",
    "os_name": "posix",
    "implementation_name": "cpython",
    "platform_python_implementation": "CPython",
}
PIP_TARGET = [
    "--no-deps",
    "--platform", PLATFORM,
    "--python-version", "3.13",
    "--implementation", "cp",
    "--abi", "cp313", "--abi", "abi3", "--abi", "none",
    "--only-binary=:all:",
    "--disable-pip-version-check",
    "--quiet",
]  # fmt: skip


def runtime_requirements() -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return [Requirement(line) for line in project["dependencies"]]


def pinned_closure(roots: list[Requirement]) -> dict[str, str]:
    """name → version for the roots and everything they need on the target, as installed in this venv."""
    pins: dict[str, str] = {}
    extras_seen: dict[str, set[str]] = {}
    pending = list(roots)
    while pending:
        requirement = pending.pop()
        name = canonicalize_name(requirement.name)
        extras = set(requirement.extras)
        if name in pins and extras <= extras_seen[name]:
            continue
        distribution = metadata.distribution(name)
        pins[name] = distribution.version
        extras_seen[name] = extras_seen.get(name, set()) | extras
        for line in distribution.requires or []:
            dependency = Requirement(line)
            active = dependency.marker is None or any(
                dependency.marker.evaluate({**TARGET, "extra": extra}) for extra in extras_seen[name] | {""}
            )
            if active:
                pending.append(dependency)
    for missing, stand_in in STAND_INS.items():
        if pins.pop(missing, None) is not None:
            pins[stand_in] = metadata.version(stand_in)
    return dict(sorted(pins.items()))


def pip_install(target: Path, specs: list[str], source: list[str]) -> None:
    command = [sys.executable, "-m", "pip", "install", *PIP_TARGET, "--target", str(target), *source, *specs]
    subprocess.run(command, check=True)


def build(out: Path, wheelhouse: Path) -> dict[str, str]:
    pins = pinned_closure(runtime_requirements())
    native = [f"{name}=={pins[name]}" for name in sorted(PYODIDE_BUILDS)]
    rest = [f"{name}=={version}" for name, version in pins.items() if name not in PYODIDE_BUILDS]
    staging = Path(tempfile.mkdtemp(prefix="python_modules.", dir=out.parent))
    try:
        if wheelhouse.is_dir():
            pip_install(staging, native, ["--no-index", "--find-links", str(wheelhouse)])
        else:
            pip_install(staging, native, ["--index-url", PYODIDE_INDEX])
        pip_install(staging, rest, [])
        # Console scripts and data files are not importable modules: nothing in the Worker reads them.
        for leftover in ("bin", "share"):
            shutil.rmtree(staging / leftover, ignore_errors=True)
        for cache in staging.rglob("__pycache__"):
            shutil.rmtree(cache, ignore_errors=True)
        (staging / "bundle.json").write_text(json.dumps({"platform": PLATFORM, "packages": pins}, indent=2) + "\n")
        if out.exists():
            shutil.rmtree(out)
        staging.rename(out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return pins


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--wheelhouse", type=Path, default=DEFAULT_WHEELHOUSE)
    parser.add_argument("--out", type=Path, default=ROOT / "python_modules")
    args = parser.parse_args()
    pins = build(args.out.resolve(), args.wheelhouse)
    source = "edge kit wheelhouse" if args.wheelhouse.is_dir() else "Pyodide's package index"
    print(f"python_modules/: {len(pins)} packages for {PLATFORM} (WebAssembly builds from {source})")


if __name__ == "__main__":
    main()
