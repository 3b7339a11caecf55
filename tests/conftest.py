"""Shared fixtures: one real anvil per test session, and a client signing with dev account 0."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

#: Threads of OpenMP, OpenBLAS and MKL (torch's training, numpy's products) per pytest-xdist worker, and in the
#: processes tests start, when several workers share the machine (``make test``: two on two cores). Their default,
#: one thread per core in every worker, oversubscribes the cores, and a busy-waiting OpenMP team then waits for
#: the other worker's threads: training tests ran 2-5x slower at load 4-6. The environment can set them.
XDIST_THREADS = "1"
if int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")) > 1:
    for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(_var, XDIST_THREADS)

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


#: The longest test files (seconds in a worker of `make test`, mean of two runs at load 2-6, 2026-11-30), scheduled
#: first: `make test` hands whole files to two workers in collection order, so a long file collected last would run
#: alone at the end.
LONGEST_FIRST = (
    "test_e2e_job.py",  # 208 s
    "test_zk_onchain.py",  # 175 s
    "test_signals.py",  # 148 s
    "test_zk_gram.py",  # 110 s
    "test_cli_roles.py",  # 101 s
    "test_zk_keys.py",  # 86 s
    "test_zk_row.py",  # 85 s
    "test_web_browser.py",  # 83 s
    "test_encrypted_updates.py",  # 73 s
    "test_dispute_attacks.py",  # 68 s
    "test_web_ipfs_fetches.py",  # 67 s
    "test_gas_report.py",  # 65 s
    "test_web_api.py",  # 53 s
    "test_demo_ipfs_api.py",  # 51 s
    "test_faults.py",  # 50 s
    "test_attack_review_stale.py",  # 49 s
    "test_market.py",  # 49 s
    "test_ipfs_swarm.py",  # 48 s
    "test_escrow_stateful.py",  # 43 s
    "test_web_a11y.py",  # 40 s
)


def pytest_configure(config: pytest.Config) -> None:
    """pytest-xdist hands out files in collection order: its default for ``--dist loadfile`` (``loadscopereorder``)
    would sort them by their number of tests instead, and the long files of :data:`LONGEST_FIRST`, which have few
    tests, would run last, one worker finishing them while the other idles."""
    if getattr(config.option, "loadscopereorder", False):
        config.option.loadscopereorder = False


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The files of :data:`LONGEST_FIRST` first, in its order; the rest keep their order (a stable sort)."""
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Print the reports the run wrote (gas report, ...), so they show up in CI logs."""
    for path in sorted((ROOT / "reports").glob("*.md")):
        if path.stat().st_mtime >= _SESSION_START:
            terminalreporter.write_sep("=", f"reports/{path.name}")
            terminalreporter.write_line(path.read_text())
