"""slither on the production contracts: every finding is fixed or justified (docs/static-analysis.md)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from marketplace.adapters.toolchain import ToolchainError
from scripts.slither import JUSTIFIED, Finding, run_slither, slither_executable, triage

ROOT = Path(__file__).resolve().parent.parent


def _slither() -> Path:
    try:
        return slither_executable()
    except ToolchainError as exc:
        pytest.skip(str(exc))


def test_every_slither_finding_is_justified() -> None:
    findings = run_slither(ROOT, _slither())
    unexpected, stale = triage(findings)
    assert not unexpected, "new slither findings: fix them, or justify them in JUSTIFIED and the doc:\n" + "\n".join(
        f"{f.detector} {f.contract}.{f.function} ({f.impact}) {f.location}\n{f.description}" for f in unexpected
    )
    assert not stale, f"justified findings slither no longer reports (drop them from JUSTIFIED and the doc): {stale}"


def test_the_doc_lists_every_justified_finding() -> None:
    doc = (ROOT / "docs" / "static-analysis.md").read_text()
    rows = re.findall(r"^\| `([\w-]+)` \| `(?:(\w+)\.)?([^`]+)` \|.*\| justified \|", doc, flags=re.MULTILINE)
    assert set(rows) == set(JUSTIFIED)


def test_triage_flags_new_and_stale_findings() -> None:
    def finding(detector: str, contract: str, function: str) -> Finding:
        return Finding(detector, "Low", "High", contract, function, "x.sol#1-1", "")

    justified = {("timestamp", "M", "f"): "ok", ("assembly", "M", "g"): "ok"}
    unexpected, stale = triage([finding("timestamp", "M", "f"), finding("timestamp", "M", "h")], justified)
    assert [f.key for f in unexpected] == [("timestamp", "M", "h")]
    assert stale == [("assembly", "M", "g")]
