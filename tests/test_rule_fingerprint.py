"""The rule's fingerprint (and with it the proving-key cache) changes whenever the rule's behaviour
can change, and only then: any code in ``marketplace/rule/``, the fixed point and the committed
rows; not docstrings or comments."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from marketplace.adapters.ezkl.keys import CIRCUIT_SIZES, circuit_for, fingerprint, gram_folder, smallest_logrows
from marketplace.rule import PROTOCOL_DIR, RULE_DIR, RULE_VERSION, rule_fingerprint, rule_sources
from marketplace.rule.circuit import CIRCUIT_LAYOUTS, CircuitLayout, layout_for


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
        ("rule/circuit.py", 'CircuitLayout(32, "topk", 3)', 'CircuitLayout(32, "topk", 4)'),  # a size's layout
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


def test_the_layout_table_offers_up_to_64_slots_and_keys_name_their_layout() -> None:
    """Sizes, sorts and inner columns come from the rule's table (so RULE_VERSION covers them); a key's
    fingerprint and folder also name the layout, so keys of a layout chosen by hand (a test's TopK
    circuit at 8 slots) are never taken for the size's own."""
    assert {n: layout.k for n, layout in CIRCUIT_LAYOUTS.items()} == CIRCUIT_SIZES
    assert circuit_for(33) == circuit_for(64) == (64, 32)
    with pytest.raises(ValueError, match="at most 64"):
        circuit_for(65)
    assert (layout_for(16).sort, layout_for(32).sort, layout_for(64).cols) == ("batcher", "topk", 3)
    topk = CircuitLayout(32, "topk", 2)
    assert fingerprint(8, 32, layout=topk) != fingerprint(8, 32) == fingerprint(8, 32, layout=layout_for(8))
    assert fingerprint(8, 32, layout=topk) != fingerprint(8, 32, layout=CircuitLayout(32, "topk", 3))
    assert (gram_folder(8, 32), gram_folder(8, 32, topk), gram_folder(32, 32, topk)) == (
        "gram-n8-k32",
        "gram-n8-k32-topk2",
        "gram-n32-k32",
    )


def test_logrows_hold_the_rows_the_shuffle_columns_and_the_range_table() -> None:
    settings = {"num_rows": 53_717, "required_range_checks": [[-1, 1], [0, 16383]], "total_shuffle_col_size": 1_056}
    assert smallest_logrows(settings) == 16  # the rows
    assert smallest_logrows({**settings, "num_rows": 100}) == 15  # the range table of 2^14 entries
    assert smallest_logrows({**settings, "num_rows": 100, "total_shuffle_col_size": 70_000}) == 17  # the shuffles
    assert smallest_logrows({**settings, "num_rows": 65_536 - 64}) == 17  # blinding rows on top
