"""Attack review of the model step's leave-one-out admission bar (:func:`marketplace.rule.aggregate.agreeing_admitted`:
an unpaid update enters, clipped to the paid median norm ``r``, when its cosine with the paid sum ``S`` exceeds
``max(0, min over paid i of cos(u_i, S - s_i u_i))``), as an outside attacker with README.md, docs/security.md and
the code. Each test is one attack; what holds passes.

- One paid colluder sets the bar: the rule reads sketches, so a trainer paid for an honest-looking sketch may send a
  full update that points away from the others (a component in the sketch's null space, its full norm a third of its
  sketch's: unflagged, unclipped). Its leave-one-out cosine is then -0.83 and the bar 0: Sybils pointing almost
  away from the paid mean (cosine 0.14) enter and carry 0.97-0.99 of ``MAX_STEP k r / (|P| + |A|)`` along a poison
  (0.30 / 0.49 r for 2 / 4 of them; with an honest eighth trainer the bar is 0.62 and none enters). The bound holds;
  "the bar caps how far from the paid mean each may point" does not, against a paid colluder.
- Two paid: the bar is their mutual cosine, exactly (an exact tie stays out); a paid colluder sets it to 0.017 and,
  hiding a poison up to its cap (``l`` counted 1 above its partner's), doubles ``r``: with 6 Sybils the step moves
  2.2 times the honest partner's norm along the poison, within ``MAX_STEP (PAID_CLIP 2**l + k r) / (|P| + |A|)``.
- Admission costs nothing: a Sybil whose sketch points slightly against the paid ones (unflagged, score 0: never
  slashed) and whose full update agrees through the sketch's null space is admitted like a flagged one.
- Cancellation in ``|S - s_i u_i|^2`` from rounded dots: without caps, a paid update 1e9 times its partner's norm
  makes the rest's squared norm 0 and the bar 0 (exact: 0.9), so an update at cosine 0.3 enters; every machine
  decides the same (the specification in plain Python does too). The live path's caps keep a paid update within
  ``3 sqrt(max bucket)`` times its partner's full norm (26 here, where 1e8 is needed): there the bar is the exact
  one to 1e-5 (two paid; more paid updates would need paid sketches that nearly cancel: not constructed).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from marketplace.fl.models import num_params
from marketplace.protocol.commitment import commit_update
from marketplace.protocol.sketch import sketch, sketch_params
from marketplace.round.score import score_round
from marketplace.rule.aggregate import (
    MAX_STEP,
    PAID_CLIP,
    agreeing_admitted,
    agreeing_clipped_mean,
    committed_norm_caps,
    paid_log_norms,
)
from tests.test_attack_review_agreeing import _invisible, _step_as_specified, _unit
from tests.test_attack_review_clip import SEED, K, _inputs

D = num_params("mlp")


def _visible(target: np.ndarray) -> np.ndarray:
    """The shortest vector whose CountSketch ``(SEED, D, K)`` is ``target``: each bucket's value spread evenly over its
    entries (a ``sqrt(K / D)``-ish fraction of the sketch's norm)."""
    buckets, signs = sketch_params(SEED, D, K)
    per_bucket = np.bincount(buckets, minlength=K).astype(np.float64)
    return signs * (target / per_bucket)[buckets]


def _honest(n: int, seed: int) -> tuple[list[np.ndarray], np.ndarray]:
    """``n`` honest-like updates (a shared unit direction plus 0.8-1.2 times as much noise, times 0.01: pairwise
    cosine about 0.5) and the shared direction, which an attacker knows about as well (the last global step)."""
    rng = np.random.default_rng(seed)
    base = _unit(rng.normal(size=D))
    return [0.01 * (base + rng.uniform(0.8, 1.2) * _unit(rng.normal(size=D))) for _ in range(n)], base


def _poison(base: np.ndarray, seed: int) -> np.ndarray:
    """A unit direction orthogonal to ``base``."""
    p = np.random.default_rng(seed).normal(size=D)
    return _unit(p - (p @ base) * base)


def _loo_cosines(u: np.ndarray, paid: np.ndarray, weights: np.ndarray) -> tuple[list[float], np.ndarray]:
    """Each row's cosine with the paid sum (as the step takes it: ``weights * (|P| + |A|)`` are the paid scales) less
    its own term, in float64 numpy (independent of the code under review); and that sum."""
    rows = np.asarray(u, dtype=np.float64)
    count = int((weights > 0).sum())  # |P| + |A|: every paid or admitted row has a positive weight
    scale = np.where(paid, weights * count, 0.0)
    total = (rows * scale[:, None]).sum(axis=0)
    out = []
    for i, row in enumerate(rows):
        rest = total - scale[i] * row
        out.append(float(row @ rest / (np.linalg.norm(row) * np.linalg.norm(rest))))
    return out, total


# --------------------------------------------------------------------------- one paid colluder sets the bar


@dataclass(frozen=True)
class _ColluderRound:
    admitted: np.ndarray  # the step's admitted mask
    cosines: list[float]  # each row's leave-one-out cosine (paid) or cosine with the paid sum (unpaid)
    radius: float  # r, the paid median norm
    along: float  # the step's component along the poison
    bound: float  # MAX_STEP (k r + the paid updates' own share along the poison) / (|P| + |A|)
    count: int  # |P| + |A|
    length: float  # the eighth trainer's full norm over the honest update it replaces


def _colluder_round(sybils: int, colluder: bool) -> _ColluderRound:
    """Eight paid trainers (the eighth honest, or a colluder with the same sketch) and ``sybils`` boosted Sybils
    (5 r along 0.15 base + the poison + their own noise)."""
    honest, base = _honest(8, seed=16)
    poison = _poison(base, 17)
    eighth = honest[7]
    if colluder:  # its sketch, the shortest way, less 0.3 of its norm against the shared direction (sketch-invisible)
        eighth = _visible(sketch(honest[7], K, SEED)) - 0.3 * np.linalg.norm(honest[7]) * _unit(
            _invisible(base, SEED, K)
        )
    radius = float(np.median([np.linalg.norm(h) for h in honest]))
    rng = np.random.default_rng(18)
    crafted = [5 * radius * _unit(0.15 * base + poison + 0.2 * _unit(rng.normal(size=D))) for _ in range(sybils)]
    updates = [*honest[:7], eighth, *crafted]
    scored = score_round(_inputs(updates))
    paid = np.array(scored.chain_scores) > 0
    assert paid.tolist() == [True] * 8 + [False] * sybils and not any(scored.flags[:8]) and not any(scored.clipped)
    u = np.stack(updates).astype(np.float32)
    step = agreeing_clipped_mean(u, paid, ~paid, paid_caps=committed_norm_caps(paid_log_norms(scored.rows[:, K], paid)))
    assert scored.aggregate is not None and step.step is not None
    assert step.step.tobytes() == scored.aggregate.tobytes()
    cosines, _ = _loo_cosines(u, paid, step.weights)
    count = int(paid.sum() + step.admitted.sum())
    along = float(scored.aggregate.astype(np.float64) @ poison)
    background = sum(abs(float(u[i].astype(np.float64) @ poison)) for i in range(8))
    bound = MAX_STEP * (sybils * radius + background) / count
    length = float(np.linalg.norm(eighth) / np.linalg.norm(honest[7]))
    return _ColluderRound(step.admitted, cosines, radius, along, bound, count, length)


def test_a_paid_colluder_drags_the_bar_to_zero_and_sybils_pointing_almost_away_enter_up_to_the_bound() -> None:
    """Eight paid trainers; the eighth a colluder sending its sketch the shortest way (its full update 0.12 of its
    sketch's norm) less 0.3 of its norm along the shared direction, in the sketch's null space: same row, unflagged,
    paid, unclipped (0.33 of its sketch's norm). Its leave-one-out cosine is -0.83, the bar ``max(0, -0.83)`` = 0.
    2 / 4 Sybils (5 r along 0.15 base + a poison + noise: cosine 0.14 with the paid sum) enter and move the step
    0.30 / 0.49 r along the poison: 0.97-0.99 of ``MAX_STEP k r / (|P| + |A|)`` (0.3 / 0.5 r). With the eighth trainer
    honest the bar is 0.62 and the same Sybils stay out (0.004 r). A sign flip of a Sybil never enters, bar 0 or
    not. The documented bound holds; the bar limits how far from the paid mean an admitted update points only
    while every paid trainer is honest."""
    for sybils, lo, hi in ((2, 0.29, 0.30), (4, 0.48, 0.50)):
        fair = _colluder_round(sybils, colluder=False)
        assert not fair.admitted.any() and min(fair.cosines[:8]) > 0.6 and max(fair.cosines[8:]) < 0.16
        assert abs(fair.along) < 0.01 * fair.radius
        bent = _colluder_round(sybils, colluder=True)
        assert 0.3 < bent.length < 0.35  # shorter than the honest update it replaces
        assert bent.cosines[7] < -0.8 and min(bent.cosines[:7]) > 0.6  # the colluder alone sets the bar: 0
        assert bent.admitted[8:].all() and 0.1 < min(bent.cosines[8:]) < 0.16
        along = bent.along / bent.radius
        assert lo * bent.radius <= bent.along <= min(bent.bound, hi * bent.radius), f"{along:.3f} r along the poison"
        assert bent.along >= 0.95 * MAX_STEP * sybils * bent.radius / bent.count  # the bar held back almost nothing

    honest, base = _honest(8, seed=16)
    poison = _poison(base, 17)
    eighth = _visible(sketch(honest[7], K, SEED)) - 0.3 * np.linalg.norm(honest[7]) * _unit(_invisible(base, SEED, K))
    flip = -_unit(0.15 * base + poison)
    u = np.stack([*honest[:7], eighth, flip, 1e-3 * flip]).astype(np.float32)
    assert not agreeing_admitted(u, np.arange(10) < 8, np.arange(10) >= 8).any()


# --------------------------------------------------------------------------- two paid


def test_with_two_paid_the_bar_is_their_mutual_cosine_exactly_and_one_colluder_sets_it() -> None:
    """Two paid updates: each one's rest is the other, so the bar is their mutual cosine. Integers make it exact:
    (4, 3) and (4, -3) have cosine 7/25; a candidate at exactly 7/25 with their sum stays out (strictly greater is
    needed), one at 0.29 enters; with (4, 3) and (3, -4) (cosine 0) anything at a positive cosine enters and a
    candidate orthogonal to the sum does not.

    The attack: an honest trainer and a colluder are the two paid (in a round where the others are flagged or
    gated). Honest, the bar is 0.57 and 6 Sybils at cosine 0.37 stay out. The colluder sends twice its sketch (``l``
    one above its partner's, as much as its cap counts) the shortest way plus 4 times its partner's norm of a poison
    in the sketch's null space: clipped to its cap (``1.5 * 2 * |s_0|``), its cosine with its partner 0.017 is the
    bar, ``r`` (the mean of the two) is 1.9 times the honest norm, and the 6 Sybils (cosine 0.94) enter: the step
    moves 2.2 times the honest trainer's norm along the poison, within ``MAX_STEP (PAID_CLIP 2**l + k r) / 8``."""
    paid2 = np.array([True, True, False, False, False])

    def admitted(a: list[float], b: list[float], *cands: list[float]) -> list[bool]:
        u = np.array([a, b, *cands], dtype=np.float32)
        return agreeing_admitted(u, paid2[: len(u)], ~paid2[: len(u)]).tolist()[2:]

    assert Fraction(4 * 4 - 3 * 3, 25) == Fraction(7, 25)
    assert admitted([4, 3, 0], [4, -3, 0], [7, 24, 0], [7, 23, 0], [0, 0, 1]) == [False, True, False]
    assert admitted([4, 3, 0], [3, -4, 0], [1, 0, 0], [0, 0, 1], [-1, 0, 0]) == [True, False, False]
    assert admitted([4, 3, 0], [3, -4, 0], [1, 7, 0], [2, 7, 0]) == [False, True]  # S = (7, -1): cosine 0, then > 0

    honest, base = _honest(2, seed=16)
    poison = _poison(base, 17)
    norm0 = float(np.linalg.norm(honest[0]))
    crafted = [
        5 * norm0 * _unit(0.5 * base + poison + 0.2 * _unit(np.random.default_rng(200 + j).normal(size=D)))
        for j in range(6)
    ]
    colluder = _visible(2 * sketch(honest[1], K, SEED)) + 4 * norm0 * _unit(_invisible(poison, SEED, K))
    for second, expected in ((honest[1], False), (colluder, True)):
        u = np.stack([honest[0], second, *crafted]).astype(np.float32)
        rows = np.stack([commit_update(x, SEED, K)[0] for x in u])
        paid = np.arange(8) < 2
        caps = committed_norm_caps(paid_log_norms(rows[:, K], paid))
        step = agreeing_clipped_mean(u, paid, ~paid, paid_caps=caps)
        cosines, _ = _loo_cosines(u, paid, step.weights)
        assert cosines[0] == np.float64(cosines[0]) and abs(cosines[0] - cosines[1]) < 1e-12  # one bar: theirs
        assert step.admitted[2:].tolist() == [expected] * 6
        assert step.step is not None
        along = float(step.step.astype(np.float64) @ poison)
        if not expected:
            assert 0.55 < cosines[0] < 0.6 and max(cosines[2:]) < 0.4 and abs(along) < 0.01 * norm0
            continue
        assert step.clipped.tolist()[:2] == [False, True] and cosines[0] < 0.02 and min(cosines[2:]) > 0.9
        taken = sorted([norm0, float(caps[1])])
        radius = (taken[0] + taken[1]) / 2
        assert 1.85 < radius / norm0 < 2.0
        assert 2.1 * norm0 <= along <= MAX_STEP * (float(caps[1]) + 6 * radius) / 8
        assert float(caps[1]) <= PAID_CLIP * 2 * float(np.linalg.norm(sketch(honest[0], K, SEED))) * (1 + 2**-12)


# --------------------------------------------------------------------------- cost


def test_an_admitted_sybil_need_not_be_flagged_so_admission_costs_it_no_stake() -> None:
    """Eight honest paid trainers and 8 Sybils, none flagged: each Sybil's sketch is the honest median sketch norm
    along its own vertex of a simplex (mutual cosine -1/7) tilted 0.1 against the paid sketches' mean, sent the
    shortest way, so the rule finds it valid, not far, not lazy or boosted, not a duplicate and not agreeing: score
    0, no flag, nothing slashed. Its full update adds 3 r of (the shared direction + a poison + noise) in the
    sketch's null space: cosine 0.66 with the paid sum, above the bar (0.62, the honest trainers'), so all 8 enter,
    clipped, and move the step 0.53 r along the poison (``MAX_STEP k r / (|P| + |A|)`` = 0.75 r). A flagged Sybil
    loses its stake each round; these lose nothing, so a project's seats, not stakes, bound how many Sybils
    admission takes (a trainer paid for a sketch-hidden poison, docs/security.md, already did more)."""
    honest, base = _honest(8, seed=16)
    poison = _poison(base, 17)
    radius = float(np.median([np.linalg.norm(h) for h in honest]))
    mean_sketch = _unit(sum(sketch(h, K, SEED) for h in honest))
    sketch_norm = float(np.median([np.linalg.norm(sketch(h, K, SEED)) for h in honest]))
    rng = np.random.default_rng(5)
    free = rng.normal(size=(8, K))
    free -= np.outer(free @ mean_sketch, mean_sketch)
    vertices = np.linalg.qr(free.T)[0].T[:8]  # orthonormal, orthogonal to the paid mean sketch
    vertices -= vertices.mean(axis=0)  # a simplex: mutual cosine -1/7
    sybils = [
        _visible(sketch_norm * _unit(_unit(v) - 0.1 * mean_sketch))
        + 3
        * radius
        * _unit(_invisible(base + poison + 0.2 * _unit(np.random.default_rng(100 + j).normal(size=D)), SEED, K))
        for j, v in enumerate(vertices)
    ]
    scored = score_round(_inputs([*honest, *sybils]))
    assert not any(scored.flags)  # nobody slashed
    assert all(s > 0 for s in scored.chain_scores[:8]) and scored.chain_scores[8:] == [0] * 8
    assert scored.admitted == [False] * 8 + [True] * 8
    assert scored.aggregate is not None
    along = float(scored.aggregate.astype(np.float64) @ poison)
    background = sum(abs(float(h @ poison)) for h in honest)
    assert 0.5 * radius <= along <= MAX_STEP * (8 * radius + background) / 16


# --------------------------------------------------------------------------- cancellation in the rest


def _exact_loo_cosine(first: np.ndarray, total: np.ndarray, scale: float) -> float:
    """cos(first, total - scale first) in exact rationals on these floats (the quantity the code's key orders)."""
    a = [Fraction(float(x)) * Fraction(scale) for x in first]
    rest = [Fraction(float(t)) - x for t, x in zip(total.tolist(), a, strict=True)]
    dot = sum((x * y for x, y in zip(a, rest, strict=True)), Fraction(0))
    sq_a = sum((x * x for x in a), Fraction(0))
    sq_rest = sum((x * x for x in rest), Fraction(0))
    return float(dot) / math.sqrt(float(sq_a) * float(sq_rest))


def _candidates_around(total: np.ndarray, cosines: list[float], seed: int) -> np.ndarray:
    """Float32 rows at these cosines with ``total`` (to float32 rounding, far below the 1e-5 used here)."""
    rng = np.random.default_rng(seed)
    unit = _unit(total)
    rows = []
    for c in cosines:
        other = rng.normal(size=total.size)
        other = _unit(other - (other @ unit) * unit)
        rows.append(c * unit + math.sqrt(1 - c * c) * other)
    return np.stack(rows).astype(np.float32)


def test_cancellation_in_the_rest_opens_the_bar_only_beyond_the_caps_and_every_machine_decides_the_same() -> None:
    """``|S - s_i u_i|^2`` is ``|S|^2 - 2 s_i <u_i, S> + s_i^2 |u_i|^2`` on rounded dots: exact in rationals, but
    when ``u_i`` is most of ``S`` the rounding of ``|S|^2`` is the whole answer. Two paid updates at cosine 0.9, the
    first 1e9 times as long as the second (no caps: ``agreeing_admitted``, ``agreeing_clipped_mean`` without
    ``paid_caps``): the rest's squared norm comes out 0, the first update's key 0 and the bar 0 (exact: 0.9), so
    candidates at cosine 0.3 enter; the plain-Python specification decides the same, bit for bit, so no two machines
    disagree. In the live path a paid update is capped at ``PAID_CLIP * 2**(m + 1)`` (``m`` the lower median paid
    log-norm: here its partner's) and a partner's full update is at least ``|s| / sqrt(max bucket)`` long (at most
    ``sqrt(D / K)``-ish shorter than its sketch): taking the partner as short as its sketch allows and the first
    update a million times longer, clipped to 26 times its partner's full norm, the bar is the exact one to 1e-5
    (candidates 1e-5 below and above it are out and in)."""
    rng = np.random.default_rng(3)
    d = 64
    a = _unit(rng.normal(size=d))
    b = rng.normal(size=d)
    b = _unit(b - (b @ a) * a)
    partner = a.astype(np.float32)
    first = ((0.9 * a + math.sqrt(1 - 0.81) * b) * 1e9).astype(np.float32)
    total = first.astype(np.float64) + partner
    assert abs(_exact_loo_cosine(first, total, 1.0) - 0.9) < 1e-6
    u = np.concatenate([np.stack([first, partner]), _candidates_around(total, [0.3, 0.85], 4)])
    paid, cand = np.arange(4) < 2, np.arange(4) >= 2
    assert agreeing_admitted(u, paid, cand).tolist() == [False, False, True, True]  # exact: both out
    admitted, _, _, _ = _step_as_specified(u, paid, cand, MAX_STEP)
    assert admitted == [False, False, True, True]

    partner = _visible(sketch(_honest(1, seed=16)[0][0], K, SEED)).astype(np.float32)  # as short as its sketch allows
    sketch_norm = float(np.linalg.norm(sketch(partner, K, SEED)))
    assert float(np.linalg.norm(partner)) < 0.15 * sketch_norm
    other = _unit(_invisible(np.random.default_rng(9).normal(size=D), SEED, K))
    first = (1e6 * sketch_norm * (0.9 * _unit(partner.astype(np.float64)) + math.sqrt(0.19) * other)).astype(np.float32)
    rows = np.stack([commit_update(x, SEED, K)[0] for x in (first, partner)])
    caps = committed_norm_caps(paid_log_norms(rows[:, K], np.array([True, True])))
    probe = agreeing_clipped_mean(
        np.stack([first, partner]), np.array([True, True]), np.zeros(2, dtype=bool), 1.0, caps
    )
    assert probe.clipped.tolist() == [True, False]
    scale = probe.weights[0] * 2
    total = first.astype(np.float64) * scale + partner
    ratio = float(np.linalg.norm(partner)) / float(np.linalg.norm(first.astype(np.float64) * scale))
    assert ratio > 1 / 27  # the caps keep the first within 26 times its partner here (cancellation needs 1e8)
    exact_bar = min(_exact_loo_cosine(first, total, scale), _exact_loo_cosine(partner, total, 1.0))
    cands = _candidates_around(total, [exact_bar - 1e-5, exact_bar + 1e-5], 10)
    u = np.concatenate([np.stack([first, partner]), cands])
    step = agreeing_clipped_mean(u, np.arange(4) < 2, np.arange(4) >= 2, paid_caps=np.concatenate([caps, [0.0, 0.0]]))
    assert step.admitted.tolist() == [False, False, False, True]
