"""Recompile the Solidity test fixtures in tests/fixtures/contracts/ into committed JSON artifacts."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CONTRACTS_DIR = ROOT / "tests" / "fixtures" / "contracts"
BUILD_DIR = CONTRACTS_DIR / "build"
COMPILER = "solc 0.8.26"
# A source with this line is compiled through the IR pipeline (standard JSON, `viaIR`): the ERC-6492 reference
# validator is "stack too deep" for the legacy code generator.
VIA_IR_MARKER = "// solc: via-ir"


def _solcjs() -> list[str]:
    """Return the command that runs the project's pinned solcjs (node_modules first, then npx)."""
    local = ROOT / "node_modules" / ".bin" / "solcjs"
    if local.exists():
        return [str(local)]
    npx = shutil.which("npx")
    if npx is None:
        sys.exit("compile_contracts: neither node_modules/.bin/solcjs nor npx found; run `npm ci` first")
    return [npx, "--no-install", "solcjs"]


def compile_source(source: Path, out_dir: Path) -> dict[str, object]:
    """Compile one `<Name>.sol` holding contract `<Name>` and return its artifact dict."""
    version = subprocess.run(
        [*_solcjs(), "--version"], check=True, capture_output=True, text=True, cwd=CONTRACTS_DIR
    ).stdout.strip()
    if not version.startswith(COMPILER.split()[1] + "+"):
        sys.exit(f"compile_contracts: expected {COMPILER}, found solcjs {version!r}")
    name = source.stem
    if VIA_IR_MARKER in source.read_text().splitlines():
        return _compile_via_ir(source, name)
    # Run from the sources' directory with a bare file name so the metadata hash (and thus the
    # bytecode) does not depend on where the repository is checked out.
    subprocess.run(
        [*_solcjs(), "--bin", "--abi", "--optimize", "-o", str(out_dir), source.name],
        check=True,
        cwd=CONTRACTS_DIR,
    )
    stem = f"{source.stem}_sol_{name}"
    abi = json.loads((out_dir / f"{stem}.abi").read_text())
    bytecode = (out_dir / f"{stem}.bin").read_text().strip()
    if not bytecode:
        sys.exit(f"compile_contracts: {source.name} produced no bytecode (abstract contract?)")
    return {"contract": name, "compiler": COMPILER, "abi": abi, "bytecode": "0x" + bytecode}


def _compile_via_ir(source: Path, name: str) -> dict[str, object]:
    """Compile `<Name>.sol` with the optimizer through the IR pipeline (solcjs --standard-json)."""
    request = {
        "language": "Solidity",
        "sources": {source.name: {"content": source.read_text()}},
        "settings": {
            "optimizer": {"enabled": True, "runs": 200},
            "viaIR": True,
            "outputSelection": {source.name: {name: ["abi", "evm.bytecode.object"]}},
        },
    }
    answer = subprocess.run(
        [*_solcjs(), "--standard-json"],
        input=json.dumps(request),
        check=True,
        capture_output=True,
        text=True,
        cwd=CONTRACTS_DIR,
    ).stdout
    output = json.loads(answer[answer.index("{") :])
    errors = [e["formattedMessage"] for e in output.get("errors", []) if e.get("severity") == "error"]
    if errors:
        sys.exit("compile_contracts: " + "\n".join(errors))
    contract = output["contracts"][source.name][name]
    return {
        "contract": name,
        "compiler": COMPILER,
        "abi": contract["abi"],
        "bytecode": "0x" + contract["evm"]["bytecode"]["object"],
    }


def main() -> int:
    """Compile every .sol file in the fixtures directory and write build/<Name>.json."""
    sources = sorted(CONTRACTS_DIR.glob("*.sol"))
    if not sources:
        sys.exit(f"compile_contracts: no .sol files in {CONTRACTS_DIR}")
    BUILD_DIR.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="solc-") as tmp:
        for source in sources:
            artifact = compile_source(source, Path(tmp))
            target = BUILD_DIR / f"{artifact['contract']}.json"
            target.write_text(json.dumps(artifact, indent=2) + "\n")
            print(f"wrote {target.relative_to(ROOT)} ({(len(str(artifact['bytecode'])) - 2) // 2} bytes)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
