"""Compile the project's Solidity sources with solc (Standard JSON) into cached artifacts.

The output file holds a hash of every source, the settings and the compiler version; when it
matches, :func:`compile_contracts` returns the stored artifacts without running the compiler.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import solcx
from solcx.exceptions import SolcError

from marketplace.adapters.toolchain import (
    DEFAULT_SOLC_VERSION,
    node_modules,
    project_root,
    solc_binary,
    solc_package_version,
)

#: EIP-170 limit on deployed (runtime) code size.
CODE_SIZE_LIMIT = 24_576
CACHE_FORMAT = 1


class CompilationError(RuntimeError):
    """solc reported errors; ``messages`` holds each formatted message."""

    def __init__(self, messages: Sequence[str]) -> None:
        self.messages = list(messages)
        super().__init__("Solidity compilation failed:\n" + "\n".join(self.messages))


@dataclass(frozen=True)
class Artifact:
    """One compiled contract: ABI plus creation and runtime bytecode (hex, no 0x prefix), and where the runtime
    code holds its immutables (``(start, length)`` in bytes; zeros in ``deployed_bytecode``, the constructor's
    values once deployed)."""

    name: str
    source: str
    abi: list[dict[str, Any]] = field(hash=False)
    bytecode: str
    deployed_bytecode: str
    immutables: tuple[tuple[int, int], ...] = ()

    @property
    def deployed_size(self) -> int:
        """Runtime code size in bytes (what the 24,576-byte limit applies to)."""
        return len(self.deployed_bytecode) // 2

    @property
    def is_deployable(self) -> bool:
        """False for interfaces and abstract contracts (no creation code)."""
        return bool(self.bytecode)

    def is_runtime_of(self, code: bytes) -> bool:
        """Whether ``code`` (what ``eth_getCode`` returns) is this contract's runtime code, byte for byte, but for
        the values of its immutables (whatever its constructor set them to)."""
        expected = bytes.fromhex(self.deployed_bytecode)
        if not expected or len(code) != len(expected):
            return False
        masked = bytearray(code)
        for start, length in self.immutables:
            masked[start : start + length] = bytes(length)
        return bytes(masked) == expected

    def to_json(self) -> dict[str, Any]:
        """Serialise for the artifacts file."""
        return {
            "name": self.name,
            "source": self.source,
            "abi": self.abi,
            "bytecode": self.bytecode,
            "deployed_bytecode": self.deployed_bytecode,
            "immutables": [list(slot) for slot in self.immutables],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Artifact:
        """Inverse of :meth:`to_json`."""
        return cls(
            name=data["name"],
            source=data["source"],
            abi=data["abi"],
            bytecode=data["bytecode"],
            deployed_bytecode=data["deployed_bytecode"],
            immutables=tuple((int(start), int(length)) for start, length in data.get("immutables", [])),
        )


class Artifacts(dict[str, Artifact]):
    """Artifacts keyed by contract name, plus the compiler's warnings and cache status."""

    def __init__(
        self, items: Iterable[tuple[str, Artifact]] = (), warnings: Sequence[str] = (), cached: bool = False
    ) -> None:
        super().__init__(items)
        self.warnings: list[str] = list(warnings)
        self.cached = cached


def _default_sources() -> list[Path]:
    return [project_root() / "contracts"]


def _unit_name(path: Path, root: Path) -> str:
    """Source unit name: the path relative to the project root when possible, else absolute."""
    try:
        return path.resolve().relative_to(root).as_posix()
    except ValueError:
        return path.resolve().as_posix()


def collect_sources(roots: Sequence[Path], base: Path) -> dict[str, str]:
    """Map source unit names to the contents of every ``*.sol`` file under ``roots``."""
    sources: dict[str, str] = {}
    for src_root in roots:
        if src_root.is_file():
            files = [src_root]
        elif src_root.is_dir():
            files = sorted(src_root.rglob("*.sol"))
        else:
            raise FileNotFoundError(f"Solidity source path not found: {src_root}")
        for file in files:
            sources[_unit_name(file, base)] = file.read_text()
    return sources


def build_settings(evm_version: str = "cancun", optimizer_runs: int = 200) -> dict[str, Any]:
    """Standard JSON ``settings`` shared by every compilation in the project."""
    return {
        "remappings": ["@openzeppelin/=node_modules/@openzeppelin/"],
        "optimizer": {"enabled": True, "runs": optimizer_runs},
        "evmVersion": evm_version,
        "viaIR": False,
        "outputSelection": {
            "*": {
                "*": [
                    "abi",
                    "evm.bytecode.object",
                    "evm.deployedBytecode.object",
                    "evm.deployedBytecode.immutableReferences",
                ]
            }
        },
    }


def _fingerprint(sources: dict[str, str], settings: dict[str, Any], compiler: str) -> str:
    digest = hashlib.sha256()
    digest.update(
        json.dumps({"settings": settings, "compiler": compiler, "format": CACHE_FORMAT}, sort_keys=True).encode()
    )
    for name in sorted(sources):
        digest.update(name.encode() + b"\0" + hashlib.sha256(sources[name].encode()).digest())
    return digest.hexdigest()


def _load_cache(out: Path, fingerprint: str) -> Artifacts | None:
    try:
        data = json.loads(out.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("fingerprint") != fingerprint:
        return None
    items = ((name, Artifact.from_json(a)) for name, a in data["contracts"].items())
    return Artifacts(items, warnings=data.get("warnings", []), cached=True)


def _write_cache(out: Path, fingerprint: str, compiler: str, artifacts: Artifacts) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "fingerprint": fingerprint,
        "compiler": compiler,
        "warnings": artifacts.warnings,
        "contracts": {name: a.to_json() for name, a in artifacts.items()},
    }
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(payload, indent=1))
    tmp.replace(out)


def _extract(output: dict[str, Any], sources: dict[str, str]) -> Artifacts:
    """Turn solc output into artifacts for the contracts defined in our own sources."""
    diagnostics = output.get("errors", [])
    errors = [d.get("formattedMessage", d.get("message", "")) for d in diagnostics if d["severity"] == "error"]
    if errors:
        raise CompilationError(errors)
    warnings = [d.get("formattedMessage", d.get("message", "")) for d in diagnostics]
    artifacts = Artifacts(warnings=warnings)
    for unit, contracts in output.get("contracts", {}).items():
        if unit not in sources:
            continue  # imported library code (e.g. OpenZeppelin)
        for name, data in contracts.items():
            if name in artifacts:
                raise CompilationError(
                    [f"contract name {name!r} is defined in both {artifacts[name].source} and {unit}"]
                )
            artifacts[name] = Artifact(
                name=name,
                source=unit,
                abi=data["abi"],
                bytecode=data["evm"]["bytecode"]["object"],
                deployed_bytecode=data["evm"]["deployedBytecode"]["object"],
                immutables=_immutables(data["evm"]["deployedBytecode"].get("immutableReferences", {})),
            )
    return artifacts


def _immutables(references: dict[str, list[dict[str, int]]]) -> tuple[tuple[int, int], ...]:
    """solc's ``immutableReferences`` (AST id -> where the runtime code holds it) as sorted ``(start, length)``."""
    return tuple(sorted((int(r["start"]), int(r["length"])) for refs in references.values() for r in refs))


def compile_contracts(
    sources: Path | Sequence[Path] | None = None,
    out: Path | None = None,
    *,
    version: str = DEFAULT_SOLC_VERSION,
    evm_version: str = "cancun",
    optimizer_runs: int = 200,
    force: bool = False,
) -> Artifacts:
    """Compile every ``*.sol`` under ``sources`` (default ``contracts/``) and cache the result.

    ``sources`` may be one directory/file or several (e.g. ``contracts/`` plus test fixtures).
    ``out`` defaults to ``build/contracts.json`` for the default sources, else to a file named
    after the source roots. Raises :class:`CompilationError` on compiler errors; warnings are
    available as ``result.warnings``.
    """
    root = project_root()
    roots = _default_sources() if sources is None else [sources] if isinstance(sources, Path) else list(sources)
    roots = [Path(r).resolve() for r in roots]
    if out is None:
        if roots == [r.resolve() for r in _default_sources()]:
            out = root / "build" / "contracts.json"
        else:
            tag = hashlib.sha256("\0".join(map(str, roots)).encode()).hexdigest()[:10]
            out = root / "build" / f"contracts-{tag}.json"

    unit_sources = collect_sources(roots, root)
    if not unit_sources:
        raise CompilationError([f"no *.sol files under {', '.join(map(str, roots))}"])
    settings = build_settings(evm_version, optimizer_runs)
    oz_manifest = node_modules(root) / "@openzeppelin" / "contracts" / "package.json"
    oz_version = json.loads(oz_manifest.read_text())["version"] if oz_manifest.is_file() else "absent"
    compiler = f"solc-js {solc_package_version(version)}; openzeppelin {oz_version}"
    fingerprint = _fingerprint(unit_sources, settings, compiler)

    if not force:
        cached = _load_cache(out, fingerprint)
        if cached is not None:
            return cached

    standard_input = {
        "language": "Solidity",
        "sources": {name: {"content": text} for name, text in unit_sources.items()},
        "settings": settings,
    }
    allow = [str(root), *(str(r) for r in roots)]
    try:
        output = solcx.compile_standard(
            standard_input, solc_binary=solc_binary(version), base_path=str(root), allow_paths=allow
        )
    except SolcError as exc:
        errors = [
            e.get("formattedMessage", e.get("message", ""))
            for e in (exc.error_dict or [])
            if e.get("severity") == "error"
        ]
        raise CompilationError(errors or [str(exc)]) from None
    artifacts = _extract(output, unit_sources)
    _write_cache(out, fingerprint, compiler, artifacts)
    return artifacts
