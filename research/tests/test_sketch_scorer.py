"""Attack detection at 25% malicious (8 trainers, 2 attackers) on real digits-MLP training.

Setting: IID shards of digits (~157 samples each), 2 local epochs of SGD (lr 0.5), two
rounds, the paying configuration of :class:`SketchScorer` (median-distance threshold 2 on the
64-wide committed CountSketches, opposing-direction, lazy-norm and duplicate checks).
Attackers are trainers 6 and 7.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from marketplace.demo.attacks import Attack
from marketplace.fl.data import LocalData, load_npz, partition_digits
from marketplace.protocol.constants import DEFAULT_SKETCH_WIDTH as SKETCH_DIM
from marketplace.rule.strategy import RoundResult
from research.baselines import SketchScorer
from research.simulate import run_rounds

ATTACKERS = (6, 7)
HONEST = list(range(6))


@pytest.fixture(scope="module")
def shards(tmp_path_factory: pytest.TempPathFactory) -> list[LocalData]:
    out: Path = tmp_path_factory.mktemp("digits")
    return [load_npz(p) for p in partition_digits(8, "iid", seed=0, out_dir=out)]


def _rounds(shards: list[LocalData], attack: Attack, scorer: SketchScorer) -> list[RoundResult]:
    attackers = {} if attack is Attack.NONE else dict.fromkeys(ATTACKERS, attack)
    _, results = run_rounds("mlp", shards, scorer, rounds=2, attackers=attackers, epochs=2, lr=0.5, seed=0)
    return results


def test_clean_rounds_flag_nobody(shards: list[LocalData]) -> None:
    for res in _rounds(shards, Attack.NONE, SketchScorer(sketch_dim=SKETCH_DIM)):
        assert not res.flags.any()
        assert np.all(res.scores > 0.05) and res.scores.sum() == pytest.approx(1.0)
        d = res.details["median_distance"]
        assert d.max() / np.median(d) < 1.6  # honest spread, well under the threshold 2


@pytest.mark.parametrize("attack", [a for a in Attack if a not in (Attack.NONE, Attack.FREE_RIDER_COPY)])
def test_attackers_flagged_honest_kept(shards: list[LocalData], attack: Attack) -> None:
    for res in _rounds(shards, attack, SketchScorer(sketch_dim=SKETCH_DIM)):
        assert res.flags[list(ATTACKERS)].all(), (attack, res.details["median_distance"])
        assert not res.flags[HONEST].any(), (attack, res.details["median_distance"])
        assert np.all(res.scores[list(ATTACKERS)] == 0) and np.all(res.scores[HONEST] > 0)
        assert res.aggregate is not None


def test_copy_free_riders_flagged_but_not_their_source(shards: list[LocalData]) -> None:
    """Copies of trainer 0's update are duplicates. Given the on-chain submission order, the
    original (submitted first) is kept and paid and only the later copies are flagged; without
    an order the whole group is flagged."""
    order = np.arange(8)  # trainers submitted in index order; the copiers 6, 7 came after 0
    for res in _rounds(shards, Attack.FREE_RIDER_COPY, SketchScorer(sketch_dim=SKETCH_DIM, submission_order=order)):
        assert res.flags.tolist() == [False] * 6 + [True, True]
        assert np.all(res.scores[HONEST] > 0)
    for res in _rounds(shards, Attack.FREE_RIDER_COPY, SketchScorer(sketch_dim=SKETCH_DIM)):
        assert res.flags.tolist() == [True, False, False, False, False, False, True, True]


@pytest.mark.parametrize("attack", [Attack.SIGN_FLIP, Attack.SCALED, Attack.SYBIL])
def test_multi_krum_alternative(shards: list[LocalData], attack: Attack) -> None:
    scorer = SketchScorer(
        sketch_dim=SKETCH_DIM, method="krum", krum_f=2, flag_duplicates=False, min_norm_ratio=0.0, flag_opposing=False
    )
    for res in _rounds(shards, attack, scorer):
        assert res.flags[list(ATTACKERS)].all() and not res.flags[HONEST].any()
