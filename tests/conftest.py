"""Shared fixtures: one real anvil per test session, and a client signing with dev account 0."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run from a checkout without `pip install -e .`
    sys.path.insert(0, str(ROOT))

from marketplace.adapters.chain.anvil import AnvilNode, dev_accounts  # noqa: E402
from marketplace.adapters.chain.client import ChainClient  # noqa: E402

_SESSION_START = time.time()

# Fixture modules shared by several test files.
pytest_plugins = ["tests.market_fixtures"]


@pytest.fixture(scope="session")
def anvil() -> Iterator[AnvilNode]:
    """A real anvil on a free port for the whole session."""
    with AnvilNode() as node:
        yield node


@pytest.fixture
def chain(anvil: AnvilNode) -> ChainClient:
    """A ChainClient on the session anvil, signing with anvil dev account 0."""
    return ChainClient(anvil.url, dev_accounts(1)[0], expected_chain_id=anvil.chain_id)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Print the reports the run wrote (gas report, ...), so they show up in CI logs."""
    for path in sorted((ROOT / "reports").glob("*.md")):
        if path.stat().st_mtime >= _SESSION_START:
            terminalreporter.write_sep("=", f"reports/{path.name}")
            terminalreporter.write_line(path.read_text())
