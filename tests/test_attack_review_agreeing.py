"""Attack review of the agreeing model step (issue 16: :func:`marketplace.rule.aggregate.agreeing_clipped_mean` takes
the paid updates and, clipped to the paid median norm ``r``, the unpaid ones that agree with them), as an outside
attacker with README.md, docs/security.md and the code. Each test is one attack; what holds passes, what does not is
a strict xfail that says why.

- Sybils carrying a shared poison through admission (flagged for their norm, so slashed): each admitted term is at
  most ``r / (|P| + |A|)`` in the mean whatever its norm, so k of them move the step along the poison by at most
  ``MAX_STEP k r / (|P| + |A|)``; a copy of another update dodges the copy test with an eighth of orthogonal noise,
  and admission changes nobody's pay (scores are the committed rows').
- The rule only sees each update's CountSketch (public seed): a component in the sketch's null space has the same
  commitment, flags and score. It entered the model at any norm (30 x: 7.5 r against anvil and IPFS); fixed: a paid
  update enters at most ``PAID_CLIP`` times its committed sketch's norm, which bounds the hidden component's norm
  (not its direction) by what an unflagged update may carry.
- The owner's reference could unpay an honest trainer and keep its update in the model (free work, its share moved to
  a colluding paid trainer that also sets the admission bar): fixed, a trainer the reference unpaid is no candidate.
- Audit determinism on untrusted floats: the step is its plain-Python specification bit for bit on subnormals,
  ``-0.0``, zeros and magnitudes up to 1e38 (float32 products in float64 whatever numpy's promotion rules); in a
  thread that flushes subnormals (FTZ/DAZ) the step refuses to run rather than compute other bits (fixed).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from fractions import Fraction

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from bench.owner_reference import adversarial_reference, colluder_mask, pay_moved
from marketplace.demo.job import LocalStack, local_stack
from marketplace.fl.models import num_params, param_spec, tensors_to_vector
from marketplace.protocol.commitment import commit_update, sanitize_rows
from marketplace.protocol.sketch import sketch, sketch_params
from marketplace.roles.aggregator import AggregatorNode
from marketplace.roles.audit import audit_round
from marketplace.roles.trainer import UpdateContext
from marketplace.round.collect import RoundInputs
from marketplace.round.score import score_round
from marketplace.rule.aggregate import (
    COPY_COS,
    LANES,
    MAX_STEP,
    PAID_CLIP,
    STEP_TARGET,
    FloatEnvironmentError,
    agreeing_admitted,
    agreeing_clipped_mean,
    fixed_dot,
)
from marketplace.rule.scorer import GramScorer
from tests.disputes import step_through_disputes
from tests.small_rounds import revealed_round
from tests.update_sources import FixedUpdate, agreeing_updates


def _invisible(p: np.ndarray, seed: int, k: int) -> np.ndarray:
    """``p`` less its projection on the row space of the CountSketch ``(seed, len(p), k)``: its sketch is 0, so
    adding it to an update changes neither the committed row nor the commitment."""
    buckets, signs = sketch_params(seed, p.size, k)
    per_bucket = np.bincount(buckets, minlength=k).astype(np.float64)
    return p.astype(np.float64) - signs * (sketch(p, k, seed) / np.maximum(per_bucket, 1.0))[buckets]


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v)


# --------------------------------------------------------------------------- Sybils, copies, pay


@pytest.mark.parametrize("sybils", [2, 4])
def test_sybils_with_a_shared_poison_move_the_step_at_most_r_over_the_count_each(sybils: int) -> None:
    """10 trainers, the last 20 % / 40 % Sybils (unpaid candidates: live, flagged ``boost`` and slashed): each sends
    1000 x (the honest direction + beta times one shared poison direction orthogonal to it + its own noise, so no
    two are copies). The bar (the least agreeing paid update's cosine with the rest of the paid sum, 0.58 / 0.56
    here) caps beta: at 0.6 they enter (cosine 0.80 / 0.78) and the step's component along the poison is 0.15 r /
    0.31 r (r: the paid median norm), at 1.2 (0.60 / 0.59) still, 0.23 r / 0.46 r, within the bound
    ``MAX_STEP * sybils * r / (|P| + |A|)`` (0.3 r / 0.6 r) however long their updates; at beta = 1.4 (cosine 0.54 /
    0.53) none enters. A paid update of norm 2 r (the longest the rule leaves unflagged) could carry up to 2 r / 10
    of poison per Sybil, lengthened."""

    def round_with(beta: float) -> tuple[np.ndarray, float, float]:
        rng = np.random.default_rng(16)
        d, n = 512, 10
        base = _unit(rng.normal(size=d))
        poison = rng.normal(size=d)
        poison = _unit(poison - (poison @ base) * base)
        honest = [base + _unit(rng.normal(size=d)) * rng.uniform(0.8, 1.2) for _ in range(n - sybils)]
        crafted = [1000 * (base + beta * poison + 0.2 * _unit(rng.normal(size=d))) for _ in range(sybils)]
        u = np.stack(honest + crafted).astype(np.float32)
        paid = np.arange(n) < n - sybils
        result = agreeing_clipped_mean(u, paid, ~paid)
        radius = float(np.median(np.linalg.norm(u[paid].astype(np.float64), axis=1)))
        assert result.step is not None
        return result.admitted[paid.size - sybils :], float(result.step.astype(np.float64) @ poison), radius

    for beta in (0.6, 1.2):
        admitted, along, radius = round_with(beta)
        assert admitted.all()
        assert 0.35 * MAX_STEP * sybils * radius / 10 <= along <= MAX_STEP * sybils * radius / 10
    admitted, along, radius = round_with(1.4)
    assert not admitted.any() and abs(along) < 0.01 * radius


def test_a_copy_dodges_the_copy_test_with_an_eighth_of_noise_and_its_admission_changes_no_pay() -> None:
    """A Sybil holding another trainer's update (collusion, or a replay of one revealed earlier) submits it with
    orthogonal noise: at 12 % of its norm it is a copy (cosine 0.9929 >= 1 - 2^-7) and stays out, at 13 % (0.9917)
    it enters; flipping the sign of 0.3 % of its energy keeps it a copy, 0.5 % lets it in. Admission reads the full
    updates, pay only the committed rows: two versions of the Sybil's update with the same committed row (they
    differ by a vector the sketch cannot see), one admitted and one not, leave every flag and score the same."""
    rng = np.random.default_rng(7)
    d, k, seed = num_params("mlp"), 32, 11
    base = rng.normal(size=d)
    honest = np.stack([0.01 * (base + level * rng.normal(size=d)) for level in (0.4, 0.7, 1.0, 1.3)])
    total = honest.sum(axis=0)
    victim = honest[int(np.argmax(honest @ total / np.linalg.norm(honest, axis=1)))]  # the most agreeing one
    noise = rng.normal(size=d)
    noise = _unit(noise - (noise @ victim) / (victim @ victim) * victim) * np.linalg.norm(victim)

    def with_copy(copy: np.ndarray) -> np.ndarray:
        return agreeing_admitted(np.stack([*honest, copy]).astype(np.float32), np.arange(5) < 4, np.arange(5) == 4)

    assert not with_copy(5 * (victim + 0.12 * noise))[4]
    assert with_copy(5 * (victim + 0.13 * noise))[4]
    order = rng.permutation(d)  # flip entries in a random order until 0.3 % / 0.5 % of the energy
    energy = np.cumsum(victim[order] ** 2) / (victim @ victim)
    for share, admitted in ((0.003, False), (0.005, True)):
        flipped = victim.copy()
        flipped[order[: int(np.searchsorted(energy, share))]] *= -1
        assert bool(with_copy(flipped)[4]) is admitted

    sybil = 5 * (victim + 0.13 * noise)
    against = _invisible(-20 * np.linalg.norm(sybil) * _unit(total), seed, k)  # cos with S < 0
    scored = []
    for update in (sybil, sybil + against):
        u = np.stack([*honest, update]).astype(np.float32)
        rows = np.stack([commit_update(row, seed, k)[0] for row in u])
        trainers = [f"0x{i:040x}" for i in range(5)]
        inputs = RoundInputs(1, 0, seed, k, trainers, {}, [], u, rows, np.ones(5, dtype=bool), {})
        scored.append(score_round(inputs))
    assert np.array_equal(scored[0].rows, scored[1].rows)  # the same commitments
    assert [s.admitted[4] for s in scored] == [True, False]
    assert scored[0].flags == scored[1].flags and scored[0].chain_scores == scored[1].chain_scores
    assert scored[0].flags[4] and scored[0].chain_scores[4] == 0  # the 5x copy: boosted, flagged, unpaid


# --------------------------------------------------------------------------- the owner's reference


def test_the_owners_reference_cannot_unpay_a_trainer_and_keep_its_update() -> None:
    """The owner colludes with trainer 0 (the noisiest update: it is paid, and as the least agreeing paid update it
    sets the admission bar low) and commits the reference row that moves the most pay to it
    (``bench.owner_reference.adversarial_reference``, knowing every row). The reference unpays honest trainers 2 and
    5 (their shares go to the paid ones, trainer 0's from 13.0 % to 17.5 % of the round); their updates agree with
    the paid sum more than trainer 0's agrees with the rest of it, and the step used to take them all the same: the
    owner had their work for nothing. A trainer the reference unpaid is now no candidate: its update stays out, as
    it did before issue 16, so unpaying costs the owner the update (what the rule itself leaves unpaid still
    enters)."""
    rng = np.random.default_rng(6)
    d, k, seed = num_params("mlp"), 32, 5
    base = rng.normal(size=d)
    levels = [1.2, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0]
    u = np.stack([0.01 * (base + level * rng.normal(size=d)) for level in levels]).astype(np.float32)
    n = len(u)
    rows, _ = sanitize_rows(GramScorer(sketch_dim=k, seed=seed).summarize(u))
    colluder = colluder_mask(n, [0])
    reference = adversarial_reference(rows, colluder)
    trainers = [f"0x{i:040x}" for i in range(n)]
    inputs = RoundInputs(1, 0, seed, k, trainers, {}, [], u, rows, np.ones(n, dtype=bool), {})
    scored = score_round(inputs, reference=reference)
    assert scored.reference is not None and scored.reference.used and scored.reference.unpaid == [2, 5]
    res = GramScorer(sketch_dim=k, seed=seed).evaluate(rows, np.ones(n, dtype=bool), reference)
    moved = pay_moved(res, colluder)
    assert (round(moved.colluder_before, 3), round(moved.colluder_before + moved.colluder_gain, 3)) == (0.13, 0.175)
    paid = np.array(scored.chain_scores) > 0
    before_fix = agreeing_admitted(u, paid, ~paid)  # every unpaid update a candidate, as before the fix
    assert before_fix[2] and before_fix[5]
    assert not any(scored.admitted[i] for i in scored.reference.unpaid)
    assert not any(scored.admitted)
    run = GramScorer(sketch_dim=k, seed=seed, weighting="equal").run_round(u)  # no reference: nothing excluded
    assert run.admitted is not None and not run.admitted[paid].any()


# --------------------------------------------------------------------------- audit determinism


def _dot_as_specified(a: list[float], b: list[float]) -> float:
    lanes = [0.0] * LANES
    for i, (x, y) in enumerate(zip(a, b, strict=True)):
        lanes[i % LANES] += x * y
    return math.fsum(lanes)


def _step_as_specified(
    u: np.ndarray, paid: np.ndarray, candidates: np.ndarray, max_step: float, caps: list[float] | None = None
) -> tuple[list[bool], list[float], float, bytes | None]:
    """agreeing_clipped_mean written from its docstrings in plain Python floats and Fractions (what an auditor in
    another language would write): admitted, weights, stretch and the step's float32 bytes."""
    rows = [[float(x) for x in r] for r in u.tolist()]
    n, d = len(rows), len(rows[0])
    paid_rows = [i for i in range(n) if paid[i]]
    cand = [j for j in range(n) if candidates[j] and not paid[j]]
    admitted = [False] * n
    sq = {i: _dot_as_specified(rows[i], rows[i]) for i in range(n)}
    scale, taken_norm = {}, {}
    for i in paid_rows:  # a paid update longer than its cap is shortened to it (|u|^2 > cap^2, exactly)
        cap = math.inf if caps is None else caps[i]
        clip = cap != math.inf and Fraction(sq[i]) > Fraction(cap) ** 2
        scale[i], taken_norm[i] = (cap / math.sqrt(sq[i]), cap) if clip else (1.0, math.sqrt(sq[i]))
    total = [0.0] * d
    for i in paid_rows:
        total = [t + (x * scale[i] if scale[i] != 1.0 else x) for t, x in zip(total, rows[i], strict=True)]
    if len(paid_rows) >= 2 and cand and _dot_as_specified(total, total) != 0.0:
        total_sq = Fraction(_dot_as_specified(total, total))

        def key(i: int) -> Fraction:
            """The cosine of row i with the paid sum less its own term, as an exact key."""
            own = Fraction(scale[i]) if i in scale else Fraction(0)
            dot = Fraction(_dot_as_specified(rows[i], total))
            d = dot - own * Fraction(sq[i])
            rest = total_sq - 2 * own * dot + own * own * Fraction(sq[i])
            if sq[i] == 0.0 or d == 0 or rest <= 0:
                return Fraction(0)
            value = d * d / (Fraction(sq[i]) * rest)
            return value if d > 0 else -value

        bar = max(min(key(i) for i in paid_rows), Fraction(0))
        kept = list(paid_rows)
        for j in cand:
            if key(j) <= bar:
                continue
            if any(
                (dot := _dot_as_specified(rows[j], rows[m])) > 0.0
                and Fraction(dot) ** 2 >= Fraction(COPY_COS) ** 2 * Fraction(sq[j]) * Fraction(sq[m])
                for m in kept
            ):
                continue
            admitted[j] = True
            kept.append(j)
    weights = [0.0] * n
    if not paid_rows:
        return admitted, weights, 1.0, None
    count = len(paid_rows) + sum(admitted)
    norms = sorted(taken_norm[i] for i in paid_rows)
    mid = len(norms) // 2
    radius = norms[mid] if len(norms) % 2 else (norms[mid - 1] + norms[mid]) / 2
    for i in range(n):
        if paid[i]:
            weights[i] = scale[i] / count
        elif admitted[i]:
            weights[i] = min(1.0, radius / math.sqrt(sq[i])) / count
    step = [0.0] * d
    for i in range(n):
        if paid[i] or admitted[i]:
            step = [s + weights[i] * x for s, x in zip(step, rows[i], strict=True)]
    stretch = 1.0
    length = math.sqrt(_dot_as_specified(step, step))
    cap = max(1.0, max_step * math.sqrt(count / (len(paid_rows) + len(cand))))  # step_cap: fewer in it, less
    if cap > 1.0 and length > 0.0:
        stretch = min(max(STEP_TARGET * radius / length, 1.0), cap)
    if stretch != 1.0:
        step = [s * stretch for s in step]
    return admitted, weights, stretch, np.array(step, dtype=np.float64).astype(np.float32).tobytes()


#: row scales an attacker may choose: products in the float64 subnormal-free range, float32 subnormal rows,
#: signed zeros, and rows near the float32 limit (kept below it divided by MAX_STEP and N)
SCALES = (0.0, -0.0, 1e-45, 3e-42, 1e-38, 1e-20, 1.0, 1e20, 1e36)


@settings(max_examples=300, deadline=None)
@given(
    st.integers(2, 7),
    st.integers(1, 9),
    st.lists(st.sampled_from(SCALES), min_size=7, max_size=7),
    st.lists(st.booleans(), min_size=7, max_size=7),
    st.lists(st.floats(0.0, 0.3), min_size=7, max_size=7),
    st.integers(0, 2**32 - 1),
    st.sampled_from([1.0, MAX_STEP]),
    st.lists(st.sampled_from([math.inf, 2.0, 1.0, 0.5, 1e-3]), min_size=7, max_size=7),
)
def test_the_step_is_its_plain_python_specification_bit_for_bit_on_untrusted_magnitudes(
    n: int,
    d: int,
    scales: list[float],
    paid_list: list[bool],
    noise: list[float],
    seed: int,
    max_step: float,
    cap_factors: list[float],
) -> None:
    """Rows an attacker controls (one direction, scaled to subnormals, signed zeros or 1e36, with some noise so
    that some are admitted and some are copies), each paid one capped at a multiple of its norm (none, above, at,
    below), give the same admissions, weights, stretch and step bits as the specification computed in plain
    Python: nothing in the numpy code (promotion, SIMD, reductions) decides otherwise, and the step has no NaN."""
    rng = np.random.default_rng(seed)
    direction = rng.uniform(-4, 4, size=d)
    u = np.stack([scales[i] * (direction + noise[i] * rng.uniform(-4, 4, size=d)) for i in range(n)]).astype(np.float32)
    paid = np.array(paid_list[:n], dtype=bool)
    norms = np.linalg.norm(u.astype(np.float64), axis=1)
    caps = [f * float(x) if f != math.inf else f for f, x in zip(cap_factors[:n], norms, strict=True)]
    result = agreeing_clipped_mean(u, paid, ~paid, max_step, paid_caps=np.array(caps))
    admitted, weights, stretch, step = _step_as_specified(u, paid, ~paid, max_step, caps)
    assert result.admitted.tolist() == admitted
    assert result.weights.tolist() == weights
    assert result.stretch == stretch
    assert (None if result.step is None else result.step.tobytes()) == step
    assert result.step is None or not np.isnan(result.step).any()


def test_the_step_across_lanes_is_its_specification_and_an_admitted_extreme_update_stays_clipped() -> None:
    """D = LANES + 3 (the lanes wrap): paid honest rows, candidates at the float32 limit (entries 3e38), made of
    float32 subnormals, -0.0 and exact zeros. The subnormal and the huge ones agree and enter, the huge one clipped to
    the paid median norm (its term r / count: the step stays finite); the zero rows never do; the step is the
    specification's, bit for bit. All paid rows summing to 0: nothing is admitted."""
    rng = np.random.default_rng(3)
    d = LANES + 3
    base = rng.normal(size=d)
    paid_rows = np.stack([base + 0.8 * rng.normal(size=d) for _ in range(3)]).astype(np.float32)
    direction = paid_rows.astype(np.float64).sum(axis=0)
    direction /= np.abs(direction).max()
    huge = 3e38 * direction  # entries up to 3e38, the float32 limit
    other = _unit(rng.normal(size=d)) * np.linalg.norm(direction)
    tiny = 2.0**-130 * (direction + 0.3 * other) / np.abs(direction + 0.3 * other).max()  # float32 subnormals
    u = np.stack([*paid_rows, huge, tiny, np.full(d, -0.0), np.zeros(d)]).astype(np.float32)
    assert np.all(np.abs(u[4]) < np.finfo(np.float32).tiny)
    paid = np.arange(7) < 3
    result = agreeing_clipped_mean(u, paid, ~paid)
    assert result.admitted.tolist() == [False, False, False, True, True, False, False]
    admitted, weights, stretch, step = _step_as_specified(u, paid, ~paid, MAX_STEP)
    assert result.admitted.tolist() == admitted and result.weights.tolist() == weights and result.stretch == stretch
    assert result.step is not None and result.step.tobytes() == step and np.isfinite(result.step).all()
    radius = float(np.median(np.linalg.norm(u[:3].astype(np.float64), axis=1)))
    assert result.weights[3] * float(np.linalg.norm(u[3].astype(np.float64))) <= radius / 5 * (1 + 1e-12)
    cancelling = np.stack([u[0], -u[0], u[3], u[4]])
    assert not agreeing_admitted(
        cancelling, np.array([True, True, False, False]), np.array([False, False, True, True])
    ).any()


def test_the_step_refuses_to_run_where_subnormals_are_flushed() -> None:
    """An update of float32 subnormals (finite, so accepted from IPFS) agreeing with the paid ones is admitted in
    IEEE 754's default mode. In a thread that flushes subnormals to zero (``torch.set_flush_denormal(True)``, or a
    library built with -ffast-math) its squared norm is 0, so it would not be, every weight would change with the
    count, and the audit would call a faithful model a mismatch (or the other way round): there the step raises
    FloatEnvironmentError instead."""
    rng = np.random.default_rng(5)
    d = 64
    base = rng.normal(size=d)
    paid_rows = np.stack([base + rng.normal(size=d), base + rng.normal(size=d)]).astype(np.float32)
    direction = paid_rows.astype(np.float64).sum(axis=0)
    tiny = 2.0**-130 * direction / np.abs(direction).max()  # float32 subnormals along the paid mean
    u = np.concatenate([paid_rows, tiny[None, :].astype(np.float32)])
    paid = np.array([True, True, False])
    assert agreeing_clipped_mean(u, paid, ~paid).admitted.tolist() == [False, False, True]
    if not torch.set_flush_denormal(True):
        pytest.skip("this CPU has no flush-to-zero mode")
    try:
        assert fixed_dot(u[2], u[2]) == 0.0  # what the step would read in this mode
        with pytest.raises(FloatEnvironmentError, match="subnormal"):
            agreeing_clipped_mean(u, paid, ~paid)
        with pytest.raises(FloatEnvironmentError):
            agreeing_admitted(u, paid, ~paid)
    finally:
        torch.set_flush_denormal(False)
    assert fixed_dot(u[2], u[2]) > 0.0


# --------------------------------------------------------------------------- against anvil and IPFS


class SketchHiddenPoison:
    """A trainer node's update source: ``update`` plus ``factor`` times its norm of a poison direction with the
    component the project's CountSketch sees removed (the seed and width are public, on chain)."""

    def __init__(self, update: np.ndarray, poison: np.ndarray, factor: float) -> None:
        self.update, self.poison, self.factor = update, poison, factor

    def at(self, seed: int, k: int) -> np.ndarray:
        """The update it sends to a project of sketch ``(seed, k)``."""
        hidden = _unit(_invisible(self.poison, seed, k)) * self.factor * float(np.linalg.norm(self.update))
        return (self.update.astype(np.float64) + hidden).astype(np.float32)

    def make_update(self, ctx: UpdateContext) -> np.ndarray:
        return self.at(ctx.market.sketch_seed(ctx.project_id), ctx.market.sketch_width(ctx.project_id))


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    with local_stack(tmp_path_factory.mktemp("stack"), 10) as s:
        yield s


def test_a_paid_update_carries_a_component_the_sketch_does_not_see_no_longer_than_its_committed_sketch(
    stack: LocalStack,
) -> None:
    """Four trainers on anvil and IPFS; the fourth adds to an honest-looking update 30 times its norm of a poison
    direction with no component the project's sketch sees. Its committed row is the honest update's: unflagged and
    paid like it (pay follows the committed row), and the audit agrees with the round. The step takes it shortened
    to ``PAID_CLIP`` times its committed sketch's norm (the audit names it), so the recorded step's component along
    the poison is at most ``MAX_STEP * PAID_CLIP * 2**l / 4``: no more than an unflagged update of that length could
    carry (without the cap it was 30 r / 4 = 7.5 r)."""
    honest = agreeing_updates(4, seed=41)
    poison = np.random.default_rng(42).normal(size=num_params("mlp"))
    attacker = SketchHiddenPoison(honest[3], poison, factor=30.0)
    sources = [FixedUpdate(honest[0]), FixedUpdate(honest[1]), FixedUpdate(honest[2]), attacker]
    rnd = revealed_round(stack, sources)
    pid, initial, agg = rnd.pid, rnd.initial, rnd.aggregator
    report = step_through_disputes(AggregatorNode(agg, stack.store), pid)
    assert report is not None and report.tx_hash
    seed, k = stack.admin.sketch_seed(pid), stack.admin.sketch_width(pid)
    assert commit_update(honest[3], seed, k)[1] == commit_update(attacker.at(seed, k), seed, k)[1]
    assert not any(report.flags) and all(s > 0 for s in report.chain_scores)  # paid like the honest update
    audit = audit_round(stack.admin, stack.store, pid, 0)
    assert audit.agrees  # the aggregator did nothing wrong
    assert [t.clipped for t in audit.trainers] == [False, False, False, True]  # only the attacker is shortened
    spec = param_spec("mlp")
    step = tensors_to_vector(stack.store.get_tensors(report.model_cid, expected=spec), spec).astype(np.float64)
    step -= tensors_to_vector(stack.store.get_tensors(initial, expected=spec), spec)
    radius = float(np.median(np.linalg.norm(np.stack(honest).astype(np.float64), axis=1)))
    along = float(step @ _unit(_invisible(poison, seed, k)))
    committed = float(np.linalg.norm(sketch(honest[3], k, seed)))  # 2**l, the attacker's committed sketch norm
    direction = _unit(_invisible(poison, seed, k))
    background = sum(abs(float(h.astype(np.float64) @ direction)) for h in honest[:3])  # the honest ones' own share
    bound = MAX_STEP * (PAID_CLIP * committed + background) / 4 * (1 + 1e-3)
    assert along <= bound, f"the poison moved the model {along / radius:.2f} r"
    assert along <= MAX_STEP * 2 * radius / 4  # no more than an unflagged update (norm 2 r) could move it
