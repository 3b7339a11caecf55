"""Hand-computed cases for the baseline scoring math: median flags, Krum, projection score,
reference Shapley values, Spearman, and the baseline SketchScorer."""

from __future__ import annotations

import numpy as np
import pytest

from research.baselines import (
    SketchScorer,
    coordinate_median,
    duplicate_flags,
    exact_shapley,
    gtg_shapley,
    leave_one_out,
    median_distance_flags,
    median_distances,
    multi_krum_flags,
    norm_flags,
    opposing_flags,
    projection_scores,
    rankdata,
    spearman,
)

ALL = np.ones(5, dtype=bool)
# four rows near (1, 0), one far outlier
U5 = np.array([[1.0, 0.0], [1.0, 0.2], [1.2, 0.0], [0.8, -0.2], [-5.0, 5.0]])


def test_median_and_distances_by_hand() -> None:
    assert np.allclose(coordinate_median(U5, ALL), [1.0, 0.0])
    d = median_distances(U5, ALL)
    assert np.allclose(d, [0.0, 0.2, 0.2, np.sqrt(0.08), np.sqrt(61)])
    # r = median(d) = 0.2; flag d > 2 * 0.2 = 0.4 -> only the outlier
    assert median_distance_flags(U5, ALL, threshold=2.0).tolist() == [False] * 4 + [True]
    # threshold 1.2 -> 0.24: sqrt(0.08) = 0.283 is also flagged
    assert median_distance_flags(U5, ALL, threshold=1.2).tolist() == [False, False, False, True, True]
    # inactive outlier: median of the four rows is (1, 0) as well; nothing flagged
    active = np.array([True, True, True, True, False])
    assert not median_distance_flags(U5, active).any()
    # even count: median is the mean of the two middle values
    assert np.allclose(coordinate_median(np.array([[0.0], [1.0], [2.0], [10.0]]), np.ones(4, bool)), [1.5])


def test_too_few_active_rows_flags_nothing() -> None:
    active = np.array([False, False, False, True, True])
    assert not median_distance_flags(U5, active).any()
    assert not multi_krum_flags(U5, active, f=1).any()
    assert not norm_flags(U5, active).any()


def test_multi_krum_by_hand() -> None:
    u = np.array([[0.0], [1.0], [2.0], [10.0], [11.0]])
    # n=5, f=1 -> k = n-f-2 = 2 nearest: scores 0:1+4=5, 1:1+1=2, 2:1+4=5, 3:1+64=65, 4:1+81=82
    assert multi_krum_flags(u, np.ones(5, bool), f=1).tolist() == [False, False, False, False, True]
    assert multi_krum_flags(u, np.ones(5, bool), f=2).tolist() == [False, False, False, True, True]
    assert multi_krum_flags(U5, ALL, f=1).tolist() == [False] * 4 + [True]


def test_norm_and_duplicate_flags() -> None:
    u = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [0.01, 0.0], [5.0, 0.0]])
    # norms 1, 1, 1.414, 0.01, 5 ; median 1
    assert norm_flags(u, np.ones(5, bool), 0.1).tolist() == [False, False, False, True, False]
    assert norm_flags(u, np.ones(5, bool), 0.1, 3.0).tolist() == [False, False, False, True, True]
    dup = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.5, 0.5]])
    assert duplicate_flags(dup, np.ones(4, bool)).tolist() == [True, True, False, False]
    assert duplicate_flags(dup, np.array([True, False, True, True])).tolist() == [False] * 4


def test_projection_score_by_hand() -> None:
    u = np.array([[2.0, 0.0], [0.0, 2.0], [2.0, 2.0], [-4.0, 0.0], [9.0, 9.0]])
    active = np.array([True, True, True, True, False])
    flags = np.array([False, False, False, False, False])
    # inliers 0..3: g = mean = (0, 1); <u_i, g> = 0, 2, 2, 0 -> shares 0, .5, .5, 0, inactive 0
    assert np.allclose(projection_scores(u, active, flags), [0, 0.5, 0.5, 0, 0])
    assert np.allclose(projection_scores(u, active, flags, normalize=False), [0, 2, 2, 0, 0])
    flags[3] = True  # g = (4/3, 4/3): <u,g> = 8/3, 8/3, 16/3 -> 1/4, 1/4, 1/2
    assert np.allclose(projection_scores(u, active, flags), [0.25, 0.25, 0.5, 0, 0])
    assert not projection_scores(u, np.zeros(5, bool), flags).any()
    assert not projection_scores(np.zeros((3, 2)), np.ones(3, bool), np.zeros(3, bool)).any()


def test_shapley_additive_game_and_references() -> None:
    w = np.array([3.0, 1.0, 0.0, -2.0, 0.5])

    def additive(s: frozenset[int]) -> float:
        return float(sum(w[i] for i in s))

    assert np.allclose(exact_shapley(additive, 5), w)
    assert np.allclose(leave_one_out(additive, 5), w)
    assert np.allclose(gtg_shapley(additive, 5, eps_within=0.0), w)

    def majority(s: frozenset[int]) -> float:  # symmetric: Shapley = 1/3 each
        return 1.0 if len(s) >= 2 else 0.0

    assert np.allclose(exact_shapley(majority, 3), [1 / 3] * 3)
    assert np.allclose(leave_one_out(majority, 3), [0, 0, 0])
    assert not gtg_shapley(lambda s: 1.0, 4).any()  # between-round truncation
    with pytest.raises(ValueError):
        exact_shapley(additive, 13)


def test_spearman_and_ranks() -> None:
    assert rankdata(np.array([10.0, 20.0, 20.0, 5.0])).tolist() == [2.0, 3.5, 3.5, 1.0]
    assert spearman(np.array([1, 2, 3]), np.array([10, 20, 30])) == pytest.approx(1.0)
    assert spearman(np.array([1, 2, 3]), np.array([3, 2, 1])) == pytest.approx(-1.0)
    assert np.isnan(spearman(np.array([1, 1, 1]), np.array([1, 2, 3])))


def test_sketch_scorer_round() -> None:
    u = np.vstack([U5, [[1.0, 0.1]]])
    res = SketchScorer(sketch_dim=None).run_round(u, active_mask=np.array([1, 1, 1, 1, 1, 0], bool))
    assert res.flags.tolist() == [False] * 4 + [True, False]
    assert res.scores[4] == 0 and res.scores[5] == 0 and res.scores.sum() == pytest.approx(1.0)
    assert np.allclose(res.aggregate, U5[:4].mean(axis=0))
    assert np.allclose(res.weights, [0.25] * 4 + [0, 0])
    krum = SketchScorer(sketch_dim=None, method="krum", krum_f=1).run_round(U5)
    assert krum.flags.tolist() == [False] * 4 + [True]
    sk = SketchScorer(sketch_dim=64, seed=3).run_round(U5)
    assert sk.flags.tolist() == [False] * 4 + [True]


def test_opposing_flags_hand_computed() -> None:
    u = np.array([[1.0, 2.0], [2.0, 1.0], [1.0, 1.0], [-1.0, -1.0], [0.0, 0.0], [-9.0, 9.0]])
    active = np.array([1, 1, 1, 1, 1, 0], bool)
    # median of the active rows is (1, 1): dots 3, 3, 2, -2, 0; the inactive row is never flagged
    assert opposing_flags(u, active).tolist() == [False, False, False, True, False, False]
    assert not opposing_flags(u[:2], active[:2]).any()  # fewer than 3 active rows: no majority
