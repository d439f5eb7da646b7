"""Compiling the contract with the offline solcjs compiler, and the committed artifact.

The artifact (ABI + bytecode + the hash of the source it came from) is committed so that peers
never need a compiler; `make build` regenerates it and a test fails when it drifts.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from bcfl.errors import BcflError

CONTRACT = "FederationRegistry"
SOURCE = f"contracts/{CONTRACT}.sol"
SETTINGS: dict[str, Any] = {
    # Pinned: solc 0.8.37 defaults to osaka, which Anvil's default hardfork predates.
    "evmVersion": "cancun",
    "optimizer": {"enabled": True, "runs": 200},
    "outputSelection": {"*": {"*": ["abi", "evm.bytecode.object", "evm.deployedBytecode.object"]}},
}


class CompileError(BcflError):
    """The Solidity compiler rejected the source or could not run."""


def repo_root() -> Path:
    return Path(__file__).resolve().parents[3]


def solc_path(root: Path | None = None) -> Path:
    return (root or repo_root()) / "tools" / "solc" / "solc"


def artifact_path() -> Path:
    return Path(__file__).resolve().parents[1] / "artifacts" / f"{CONTRACT}.json"


def compile_contract(root: Path | None = None) -> dict[str, Any]:
    """Compile the contract from source; return the artifact dictionary."""
    import solcx  # imported here: only builders need it

    root = root or repo_root()
    source = (root / SOURCE).read_text(encoding="utf-8")
    solc = solc_path(root)
    if not solc.exists():
        raise CompileError(f"compiler shim not found at {solc}; run `make build` first")
    standard = {"language": "Solidity", "sources": {SOURCE: {"content": source}}, "settings": SETTINGS}
    try:
        out = solcx.compile_standard(standard, solc_binary=str(solc), allow_paths=str(root))
    except Exception as exc:  # solcx raises its own hierarchy; surface the compiler's message
        raise CompileError(f"compiling {SOURCE} failed: {exc}") from exc
    errors = [e for e in out.get("errors", []) if e.get("severity") == "error"]
    if errors:
        raise CompileError(f"compiling {SOURCE} failed: {errors[0].get('formattedMessage')}")
    contract = out["contracts"][SOURCE][CONTRACT]
    return {
        "contractName": CONTRACT,
        "sourceName": SOURCE,
        "sourceSha256": hashlib.sha256(source.encode()).hexdigest(),
        "compiler": {"name": "solc", "version": "0.8.37", "settings": SETTINGS},
        "abi": contract["abi"],
        "bytecode": "0x" + contract["evm"]["bytecode"]["object"],
        "deployedBytecode": "0x" + contract["evm"]["deployedBytecode"]["object"],
    }


def write_artifact(artifact: dict[str, Any], path: Path | None = None) -> Path:
    path = path or artifact_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(artifact, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    return path


def load_artifact(path: Path | None = None) -> dict[str, Any]:
    """The committed artifact; a missing or unreadable one is a clear error."""
    path = path or artifact_path()
    try:
        data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise CompileError(f"contract artifact {path} is missing or unreadable: {exc}") from exc
    return data


def artifact_hash(artifact: dict[str, Any]) -> str:
    """sha256 of the deployed bytecode, recorded in deployment records."""
    return hashlib.sha256(bytes.fromhex(artifact["bytecode"][2:])).hexdigest()


if __name__ == "__main__":
    print(write_artifact(compile_contract()))
