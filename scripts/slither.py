"""Static analysis of the production contracts with slither, offline, with the project's solc stand-in.

slither (via crytic-compile) compiles one Standard JSON input holding the production sources with the
build's own settings (:func:`marketplace.adapters.chain.compile.build_settings`, plus the AST slither reads),
through the solc-js stand-in of :func:`marketplace.adapters.toolchain.solc_binary`. crytic-compile 0.3.x runs
``solc`` from ``PATH`` for Standard JSON (``--solc`` only answers ``--version``), so the stand-in is
also linked as ``.cache/slither/bin/solc`` and that directory goes first on slither's ``PATH``.

Every finding slither reports must be fixed or listed in :data:`JUSTIFIED` (the reasons are spelled
out in ``docs/static-analysis.md``); ``python -m scripts.slither`` (``make slither``)
and ``tests/test_static_analysis.py`` fail on any other finding, and on justified ones that are gone.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from marketplace.adapters.chain.compile import build_settings
from marketplace.adapters.toolchain import ToolchainError, project_root, solc_binary

#: The contracts that get deployed (test-only contracts and ezkl's generated verifier are not analysed).
PRODUCTION_SOURCES: tuple[str, ...] = (
    "contracts/TrainingMarket.sol",
    "contracts/MarketDisputes.sol",
    "contracts/ReliabilityRegistry.sol",
    "contracts/zk/EzklRoundVerifier.sol",
    "contracts/UpdateKeys.sol",
)
#: Findings whose every element lies under one of these directories are dropped: OpenZeppelin is not ours.
#: (Not slither's ``--filter-paths``: in 0.10.3 that drops a finding when ANY element matches, which would
#: also hide findings in our code that merely mention an OpenZeppelin file.)
DEPENDENCY_DIRS: tuple[str, ...] = ("node_modules/",)

#: (detector, contract, function or state variable) -> why the finding is not a bug (see docs/static-analysis.md).
#: File-level findings (pragmas) have no contract and the pragma's text in place of the function.
JUSTIFIED: dict[tuple[str, str, str], str] = {
    ("timestamp", "TrainingMarket", "cancel"): "join deadline; periods are minutes to days",
    ("timestamp", "TrainingMarket", "startTraining"): "join deadline; periods are minutes to days",
    ("timestamp", "TrainingMarket", "join"): "join deadline; periods are minutes to days",
    ("timestamp", "TrainingMarket", "_checkConfig"): "the join deadline must fit 32 bits; seconds cannot matter",
    ("timestamp", "TrainingMarket", "_checkCommitWindow"): "commit deadline; periods are minutes to days",
    ("timestamp", "TrainingMarket", "_checkRevealOpen"): "reveal phase (reveals, batches, reference); minutes to days",
    ("timestamp", "TrainingMarket", "commitReference"): "commit phase (the owner's reference); minutes to days",
    ("timestamp", "TrainingMarket", "finalizeRound"): "flags `round + 1 == p.rounds` (struct taint)",
    ("timestamp", "TrainingMarket", "abandon"): "aggregation deadline; periods are minutes to days",
    ("timestamp", "MarketState", "_checkTiming"): "round deadlines; periods are minutes to days",
    ("assembly", "EzklRoundVerifier", "_loadVka"): "SSTORE2 read (extcodecopy), memory-safe",
    ("assembly", "EzklRoundVerifier", "_storeAsCode"): "SSTORE2 write (create), memory-safe",
    ("low-level-calls", "TrainingMarket", "withdraw"): "pull payment to any wallet; nonReentrant, effects first",
    ("low-level-calls", "MarketDisputes", "withdrawBonds"): "pull payment of bonds; nonReentrant, effects first",
    ("timestamp", "MarketDisputes", "reclaimBonds"): "dispute deadline; periods are minutes to days",
    ("timestamp", "MarketDisputes", "_challengeable"): "aggregation deadline; periods are minutes to days",
    ("assembly", "MarketDisputes", "_calldataGas"): "calldataload of the arguments to count non-zero bytes, pure",
    ("uninitialized-state", "MarketState", "_roundCommitments"): "written by the market (finalizeRound)",
    ("low-level-calls", "EzklRoundVerifier", "_verifySpecific"): "staticcall: only one word equal to 1 counts",
    ("low-level-calls", "TrainingMarket", "createProject"): "burning the protocol fee: value to a codeless constant",
    ("timestamp", "MarketDisputes", "disputeRejection"): "dispute deadline; periods are minutes to days",
    ("assembly", "TrainingMarket", "fallback"): "DELEGATECALL to the immutable disputes module, OpenZeppelin Proxy's",
    # The disputes module shares the market's storage (MarketState) and runs in it by DELEGATECALL: analysed on
    # its own it never writes what the market writes.
    ("uninitialized-state", "MarketState", "_submissions"): "written by the market (commits, reveals)",
    ("uninitialized-state", "MarketState", "_references"): "written by the market (commitReference)",
    ("unused-state", "MarketState", "_projectCount"): "used by the market; the module shares its layout",
    ("unused-state", "MarketState", "_trainerList"): "used by the market; the module shares its layout",
    ("unused-state", "MarketState", "_approvedVerifiers"): "used by the market; the module shares its layout",
    ("unused-state", "MarketState", "_bondsHeld"): "used by the module (the bonds); the market shares its layout",
    ("unused-state", "MarketState", "_bondCredits"): "used by the module (the bonds); the market shares its layout",
    ("constable-states", "MarketState", "_projectCount"): "incremented by the market's createProject",
    ("calls-loop", "TrainingMarket", "_revealOpening"): "view call to the project's approved verifier, per opening",
    ("assembly", "TrainingMarket", "extsload"): "sload of the asked slots (read-only view), memory-safe",
    ("assembly", "MarketLens", "_string"): "mstore into the array it allocated, memory-safe",
    ("divide-before-multiply", "MarketLens", "_string"): "rounds a string's length up to whole words on purpose",
    ("pragma", "", "^0.8.24"): "OpenZeppelin's own ^0.8.20 beside ours; one pinned compiler (0.8.28) builds all",
    ("solc-version", "", "^0.8.24"): "slither 0.10.3's bug table lists 0.8.24 with no bugs; the build pins 0.8.28",
}


@dataclass(frozen=True)
class Finding:
    """One slither result, keyed by detector, contract and function (or state variable)."""

    detector: str
    impact: str
    confidence: str
    contract: str
    function: str
    location: str
    description: str

    @property
    def key(self) -> tuple[str, str, str]:
        """The allowlist key: ``(detector, contract, function)``."""
        return (self.detector, self.contract, self.function)

    @property
    def where(self) -> str:
        """``Contract.function``, or just the pragma for file-level findings."""
        return f"{self.contract}.{self.function}" if self.contract else self.function


def standard_json_input(root: Path | None = None, sources: Sequence[str] = PRODUCTION_SOURCES) -> dict[str, Any]:
    """Standard JSON input for slither: the build's settings, plus the AST, for ``sources``."""
    root = root or project_root()
    for source in sources:
        if not (root / source).is_file():
            raise FileNotFoundError(f"Solidity source not found: {root / source}")
    settings = build_settings()
    settings["outputSelection"] = {"*": {"*": ["abi", "evm.bytecode", "evm.deployedBytecode"], "": ["ast"]}}
    return {"language": "Solidity", "sources": {s: {"urls": [s]} for s in sources}, "settings": settings}


def slither_executable() -> Path:
    """The ``slither`` script next to this interpreter, else the one on ``PATH``."""
    beside = Path(sys.executable).parent / "slither"
    if beside.is_file():
        return beside
    found = shutil.which("slither")
    if not found:
        raise ToolchainError("slither is not installed: pip install -r requirements-dev.txt")
    return Path(found)


def slither_version(slither: Path | None = None) -> str:
    """The installed slither's version, e.g. ``0.10.3``."""
    out = subprocess.run([str(slither or slither_executable()), "--version"], capture_output=True, text=True)
    return out.stdout.strip()


def _prepare(root: Path) -> tuple[Path, Path, Path]:
    """Write the input file and the ``solc`` link; return (input file, solc stand-in, bin dir)."""
    work = root / ".cache" / "slither"
    bin_dir = work / "bin"
    bin_dir.mkdir(parents=True, exist_ok=True)
    solc = solc_binary()
    link = bin_dir / "solc"
    if not link.is_symlink() or link.resolve() != solc.resolve():
        tmp = bin_dir / f".solc.{os.getpid()}.tmp"
        tmp.unlink(missing_ok=True)
        tmp.symlink_to(solc)
        tmp.replace(link)
    input_file = work / "input.json"
    input_file.write_text(json.dumps(standard_json_input(root), indent=2) + "\n")
    return input_file, solc, bin_dir


def slither_command(input_file: Path, solc: Path, slither: Path | None = None) -> list[str]:
    """The slither command line (JSON report on stdout); run it from the project root."""
    return [
        str(slither or slither_executable()),
        str(input_file),
        "--compile-force-framework",
        "solc-json",
        "--solc",
        str(solc),
        "--json",
        "-",
    ]


def _locate(element: dict[str, Any]) -> tuple[str, str]:
    """(contract, function or state variable) of a result's first element."""
    kind = element.get("type", "")
    name = str(element.get("name", ""))
    parent = element.get("type_specific_fields", {}).get("parent", {})
    if kind == "contract":
        return name, ""
    if kind == "node":  # a statement: its parent is the function
        grand = parent.get("type_specific_fields", {}).get("parent", {})
        return str(grand.get("name", "")), str(parent.get("name", ""))
    if kind == "variable" and parent.get("type") == "function":  # a local variable or parameter
        grand = parent.get("type_specific_fields", {}).get("parent", {})
        return str(grand.get("name", "")), str(parent.get("name", ""))
    if parent.get("type") == "contract":  # a function, modifier, event or state variable
        return str(parent.get("name", "")), name
    return "", name  # file level, e.g. a pragma: its text


def _only_dependencies(result: dict[str, Any]) -> bool:
    """Whether every element of a result with a source location lies in a dependency."""
    files = [
        str(e["source_mapping"].get("filename_relative", ""))
        for e in result.get("elements", [])
        if e.get("source_mapping")
    ]
    return bool(files) and all(f.startswith(DEPENDENCY_DIRS) for f in files)


def parse_report(report: dict[str, Any]) -> list[Finding]:
    """Findings of a ``slither --json`` report, but those only in dependencies (raises if slither failed)."""
    if not report.get("success"):
        raise RuntimeError(f"slither failed: {report.get('error')}")
    findings = []
    for result in report.get("results", {}).get("detectors", []):
        if _only_dependencies(result):
            continue
        elements = result.get("elements") or [{}]
        contract, function = _locate(elements[0])
        mapping = elements[0].get("source_mapping", {})
        lines = mapping.get("lines") or [0]
        findings.append(
            Finding(
                detector=result["check"],
                impact=result.get("impact", ""),
                confidence=result.get("confidence", ""),
                contract=contract,
                function=function,
                location=f"{mapping.get('filename_relative', '?')}#{lines[0]}-{lines[-1]}",
                description=str(result.get("description", "")).strip(),
            )
        )
    return sorted(findings, key=lambda f: (f.detector, f.contract, f.function))


def run_slither(root: Path | None = None, slither: Path | None = None, timeout: float = 600) -> list[Finding]:
    """Run slither on :data:`PRODUCTION_SOURCES` and return its findings."""
    root = root or project_root()
    input_file, solc, bin_dir = _prepare(root)
    env = dict(os.environ, PATH=f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}")
    cmd = slither_command(input_file.relative_to(root), solc, slither)
    proc = subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True, timeout=timeout)
    try:
        report = json.loads(proc.stdout)
    except ValueError:
        raise RuntimeError(f"slither printed no JSON report (exit {proc.returncode}):\n{proc.stderr[-4000:]}") from None
    return parse_report(report)


def triage(
    findings: Iterable[Finding], justified: dict[tuple[str, str, str], str] | None = None
) -> tuple[list[Finding], list[tuple[str, str, str]]]:
    """Split into (findings not justified, justified keys slither no longer reports)."""
    allow = JUSTIFIED if justified is None else justified
    findings = list(findings)
    unexpected = [f for f in findings if f.key not in allow]
    reported = {f.key for f in findings}
    stale = [key for key in allow if key not in reported]
    return unexpected, stale


def main(argv: Sequence[str] | None = None) -> int:
    """Run slither, print every finding with its status; exit 1 on unjustified or stale entries."""
    del argv
    slither = slither_executable()
    root = project_root()
    print(f"slither {slither_version(slither)} on {', '.join(PRODUCTION_SOURCES)}")
    findings = run_slither(root, slither)
    unexpected, stale = triage(findings)
    for f in findings:
        status = "justified" if f.key in JUSTIFIED else "NEW"
        print(f"  [{status:9}] {f.detector:22} {f.impact:13} {f.where}  {f.location}")
        if status == "NEW":
            print("      " + f.description.replace("\n", "\n      "))
    for key in stale:
        print(f"  [stale    ] {key}: no longer reported; remove it from JUSTIFIED and docs/static-analysis.md")
    print(f"{len(findings)} finding(s): {len(findings) - len(unexpected)} justified, {len(unexpected)} new")
    return 1 if unexpected or stale else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
