"""The rule's fingerprint (and with it the proving-key cache) changes whenever the rule's behaviour
can change, and only then: any code in ``marketplace/rule/``, the fixed point and the committed
rows; not docstrings or comments."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from marketplace.adapters.ezkl.keys import fingerprint
from marketplace.rule import PROTOCOL_DIR, RULE_DIR, RULE_VERSION, rule_fingerprint, rule_sources


@pytest.fixture
def copy(tmp_path: Path) -> Path:
    """A copy of the rule's folder and the protocol files it reads, laid out like the package."""
    shutil.copytree(RULE_DIR, tmp_path / "rule", ignore=shutil.ignore_patterns("__pycache__"))
    (tmp_path / "protocol").mkdir()
    for name in ("constants.py", "commitment.py"):
        shutil.copy(PROTOCOL_DIR / name, tmp_path / "protocol" / name)
    return tmp_path


def _fingerprint(root: Path) -> str:
    return rule_fingerprint(rule_sources(root / "rule", root / "protocol"))


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{old!r} not in {path.name}: update this test with the rule"
    path.write_text(text.replace(old, new, 1))


def test_the_copy_has_the_packages_fingerprint(copy: Path) -> None:
    assert _fingerprint(copy) == rule_fingerprint()
    assert rule_fingerprint().startswith(RULE_VERSION)


@pytest.mark.parametrize(
    ("file", "old", "new"),
    [
        ("rule/gram.py", "threshold: float = 2.25", "threshold: float = 2.5"),  # a GramConfig default
        ("rule/gram.py", "SIZE_KNOTS = (-4.0,", "SIZE_KNOTS = (-5.0,"),  # the size factor
        ("rule/gram.py", "min_valid: int = 3", "min_valid: int = 2"),
        ("rule/networks.py", "k //= 2", "k = k // 2 if k > 1 else 0"),  # the sorting network
        ("rule/circuit.py", "torch.relu(total)", "torch.relu(total + 0.0)"),  # the circuit
        ("protocol/constants.py", "SCALE = 13", "SCALE = 12"),  # the fixed point
        ("protocol/constants.py", "LOG_CLIP = 32.0", "LOG_CLIP = 31.0"),  # the committed rows
    ],
)
def test_any_change_of_the_rule_changes_it(copy: Path, file: str, old: str, new: str) -> None:
    before = _fingerprint(copy)
    _edit(copy / file, old, new)
    assert _fingerprint(copy) != before


def test_a_new_module_in_the_rules_folder_changes_it(copy: Path) -> None:
    before = _fingerprint(copy)
    (copy / "rule" / "extra.py").write_text("WEIGHT = 2\n")
    assert _fingerprint(copy) != before


def test_documentation_does_not_change_it(copy: Path) -> None:
    before = _fingerprint(copy)
    gram = copy / "rule" / "gram.py"
    _edit(gram, '"""T: far if', '"""T (reworded): far if')
    gram.write_text("# a comment\n" + gram.read_text().replace("\nclass GramConfig", "\n# another\nclass GramConfig"))
    assert _fingerprint(copy) == before


def test_proving_keys_are_cached_per_rule_version() -> None:
    assert fingerprint(8, 64) == fingerprint(8, 64, RULE_VERSION)
    assert fingerprint(8, 64, "0" * 16) != fingerprint(8, 64, "1" * 16)
    assert fingerprint(8, 64) != fingerprint(8, 32) != fingerprint(16, 32)
