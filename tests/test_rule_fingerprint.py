"""The rule's fingerprint changes whenever the rule's behaviour can change, and only then: any code in
``marketplace/rule/`` and the protocol modules it reads (the fixed point, the committed rows, the sketch); not
docstrings or comments. The circuits' fingerprint (and with it the proving-key cache) changes with the code of the
circuits and what they import, not with the rule's parts no circuit reads (the model step)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from marketplace.adapters.ezkl.keys import CIRCUIT_SIZES, circuit_for, fingerprint, gram_folder, smallest_logrows
from marketplace.rule import (
    CIRCUIT_VERSION,
    PROTOCOL_DIR,
    RULE_DIR,
    RULE_VERSION,
    circuit_sources,
    rule_fingerprint,
    rule_sources,
)
from marketplace.rule.circuit import CIRCUIT_LAYOUTS, CircuitLayout, layout_for


@pytest.fixture
def copy(tmp_path: Path) -> Path:
    """A copy of the rule's folder and the protocol's, laid out like the package."""
    shutil.copytree(RULE_DIR, tmp_path / "rule", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(PROTOCOL_DIR, tmp_path / "protocol", ignore=shutil.ignore_patterns("__pycache__"))
    return tmp_path


def _fingerprint(root: Path) -> str:
    return rule_fingerprint(rule_sources(root / "rule", root / "protocol"))


def _circuit_fingerprint(root: Path) -> str:
    return rule_fingerprint(circuit_sources(root / "rule", root / "protocol"))


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{old!r} not in {path.name}: update this test with the rule"
    path.write_text(text.replace(old, new, 1))


def test_the_copy_has_the_packages_fingerprint(copy: Path) -> None:
    assert _fingerprint(copy) == rule_fingerprint()
    assert rule_fingerprint().startswith(RULE_VERSION)
    assert _circuit_fingerprint(copy).startswith(CIRCUIT_VERSION) and CIRCUIT_VERSION != RULE_VERSION


def test_the_sources_are_the_rules_folder_and_what_it_imports_the_circuits_a_part_of_them() -> None:
    names = lambda paths: [f"{p.parent.name}/{p.name}" for p in paths]  # noqa: E731
    assert names(rule_sources()) == [
        *(f"rule/{p.name}" for p in sorted(RULE_DIR.glob("*.py"))),
        "protocol/commitment.py",
        "protocol/constants.py",
        "protocol/sketch.py",
    ]
    assert {"rule/circuit.py", "rule/row_circuit.py", "rule/gram.py", "rule/networks.py"} <= set(
        names(circuit_sources())
    )
    assert set(circuit_sources()) < set(rule_sources())
    assert not {"rule/aggregate.py", "rule/scorer.py", "rule/strategy.py"} & set(names(circuit_sources()))


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
        ("protocol/sketch.py", "signs = (rng.integers(0, 2,", "signs = (rng.integers(1, 2,"),  # the sketch
        ("rule/aggregate.py", "STEP_TARGET = 1.25", "STEP_TARGET = 1.5"),  # the model step
    ],
)
def test_any_change_of_the_rule_changes_it(copy: Path, file: str, old: str, new: str) -> None:
    before = _fingerprint(copy)
    _edit(copy / file, old, new)
    assert _fingerprint(copy) != before


@pytest.mark.parametrize(
    ("file", "old", "new", "circuit"),
    [
        ("rule/circuit.py", "torch.relu(total)", "torch.relu(total + 0.0)", True),
        ("rule/networks.py", "k //= 2", "k = k // 2 if k > 1 else 0", True),
        ("rule/gram.py", "threshold: float = 2.25", "threshold: float = 2.5", True),  # GramConfig: in the circuit
        ("protocol/constants.py", "SCALE = 13", "SCALE = 12", True),
        ("rule/aggregate.py", "STEP_TARGET = 1.25", "STEP_TARGET = 1.5", False),  # the step: audited, not proven
        ("rule/aggregate.py", "MAX_STEP = 1.5", "MAX_STEP = 2.0", False),
        (
            "rule/scorer.py",
            'weighting: Literal["samples", "equal"] = "samples"',
            'weighting: Literal["samples", "equal"] = "equal"',
            False,
        ),
    ],
)
def test_proving_keys_follow_the_circuits_code_not_the_model_step(
    copy: Path, file: str, old: str, new: str, circuit: bool
) -> None:
    """Every change changes the rule's version; only a change of a circuit or of what it imports changes the
    circuits' (and the keys' cache), so a new model step rebuilds no proving key."""
    rule, keys = _fingerprint(copy), _circuit_fingerprint(copy)
    _edit(copy / file, old, new)
    assert _fingerprint(copy) != rule
    assert (_circuit_fingerprint(copy) != keys) is circuit


def test_a_module_a_circuit_starts_to_import_is_covered_and_one_outside_the_rule_is_refused(copy: Path) -> None:
    (copy / "rule" / "extra.py").write_text("WEIGHT = 2\n")
    before = _circuit_fingerprint(copy)
    circuit = copy / "rule" / "circuit.py"
    _edit(
        circuit,
        "from __future__ import annotations\n",
        "from __future__ import annotations\n\nimport marketplace.rule.extra\n",
    )
    assert copy / "rule" / "extra.py" in circuit_sources(copy / "rule", copy / "protocol")
    assert _circuit_fingerprint(copy) != before
    (copy / "rule" / "extra.py").write_text("WEIGHT = 3\n")
    assert _circuit_fingerprint(copy) != before
    _edit(circuit, "import marketplace.rule.extra\n", "from marketplace.fl.data import load_npz\n")
    with pytest.raises(ValueError, match=r"circuit.py imports marketplace.fl.data"):
        circuit_sources(copy / "rule", copy / "protocol")


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


def test_proving_keys_are_cached_per_circuit_version() -> None:
    assert fingerprint(8, 64) == fingerprint(8, 64, CIRCUIT_VERSION)
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
