"""Attack review of the cap on paid updates (:func:`marketplace.rule.aggregate.committed_norm_caps`: the model step
takes a paid update at most ``PAID_CLIP`` = 1.5 times its committed sketch's norm ``2**l``), as an outside attacker
with README.md, docs/security.md and the code. Each test is one attack; what holds passes, what does not is a strict
xfail that says why and how to fix it.

- Audit splits in the caps' decimal arithmetic: they were computed in a copy of the calling thread's decimal
  context, so a process that traps ``Inexact`` (money code does) could not finalize a round the audit recomputes,
  and one with a small ``Emax`` took a paid update uncapped (2**32 overflowed to an infinite cap). Fixed: a context
  of the function's own. On the whole ``2**-13`` grid the float64 caps do not depend on the 40th digit.
- The cap is the right trainer's: rows and updates are both in trainer order, whatever the arrival order, and a
  row paid without its update carries nothing into the step whatever sits in its update slot.
- A coalition (a paid trainer hiding 30 or 1000 times its norm of a poison, boosted Sybils carrying it) moves the
  step along the poison within ``MAX_STEP (PAID_CLIP 2**l + k r) / (|P| + |A|)`` and clips no honest update.
- A round with fewer than three valid rows flags nobody, so nothing bounded ``l`` but the box ``[-32, 32]``: there
  a paid update entered up to ``1.5 * 2**32`` long. Fixed: a cap counts ``l`` at most ``PAID_LOG_SPREAD`` above the
  paid updates' lower median.
"""

from __future__ import annotations

import _pydecimal
import decimal
import math
import threading
from collections.abc import Iterator
from decimal import ROUND_FLOOR, ROUND_HALF_EVEN, Context, Decimal

import numpy as np
import pytest

from marketplace.demo.job import LocalStack, local_stack
from marketplace.fl.models import num_params
from marketplace.protocol.sketch import sketch
from marketplace.roles.aggregator import AggregatorNode, RoundReport
from marketplace.roles.audit import audit_round
from marketplace.round.collect import RoundInputs
from marketplace.round.score import ScoredRound, score_round
from marketplace.rule.aggregate import MAX_STEP, PAID_CLIP, agreeing_clipped_mean, committed_norm_caps, fixed_dot
from tests.disputes import step_through_disputes
from tests.small_rounds import offline_round, revealed_round
from tests.test_attack_review_agreeing import SketchHiddenPoison, _invisible, _unit
from tests.update_sources import FixedUpdate, agreeing_updates

SEED, K = 11, 32


def _inputs(updates: list[np.ndarray], arrival: list[int] | None = None) -> RoundInputs:
    """:func:`offline_round` of these updates with this file's sketch seed and width."""
    return offline_round(updates, SEED, K, arrival)


def _hidden_poison_round(factor: float = 30.0) -> tuple[RoundInputs, np.ndarray]:
    """Four agreeing trainers, the fourth adding ``factor`` times its norm of a poison its sketch does not see
    (it is clipped); the poison's unit direction."""
    honest = agreeing_updates(4, seed=41)
    poison = np.random.default_rng(42).normal(size=num_params("mlp"))
    attacker = SketchHiddenPoison(honest[3], poison, factor).at(SEED, K)
    return _inputs([*honest[:3], attacker]), _unit(_invisible(poison, SEED, K))


# --------------------------------------------------------------------------- the caps' decimal arithmetic


def test_the_caps_do_not_depend_on_the_callers_decimal_context() -> None:
    """The caps were computed in ``localcontext()``: a copy of the calling thread's decimal context with only the
    precision set. An aggregator whose process traps ``Inexact`` (``getcontext().traps[Inexact] = True``, the idiom of
    exact money code) raised ``decimal.Inexact`` in ``score_round`` and could not finalize the round the audit
    recomputes; one with ``Emax = 5`` and overflow untrapped got an infinite cap for ``l >= 16.7`` (``2**32`` =
    4.3e9 overflows), so the paid update entered uncapped; ``decimal.DefaultContext`` changed the same in every new
    thread. Fixed: the caps are computed in a context of their own, every field given, so the step is the same bits
    in each of these as in the default context."""
    inputs, _ = _hidden_poison_round()
    expected = score_round(inputs)
    grid = np.array([-32.0, -0.0, 0.5, 16.75, 31.0, 32.0])
    caps = committed_norm_caps(grid)
    contexts = [
        Context(traps=[decimal.Inexact]),
        Context(traps=[decimal.Rounded]),
        Context(prec=3, rounding=ROUND_FLOOR, Emax=5, Emin=-5, traps=[]),
        Context(prec=3, rounding=ROUND_FLOOR, Emax=5, Emin=-5, clamp=1, traps=[decimal.Clamped, decimal.Underflow]),
    ]

    def same(scored: ScoredRound, got: np.ndarray) -> None:
        assert scored.aggregate is not None and expected.aggregate is not None
        assert scored.aggregate.tobytes() == expected.aggregate.tobytes()
        assert scored.clipped == expected.clipped == [False, False, False, True]
        assert got.tobytes() == caps.tobytes()

    for ctx in contexts:
        with decimal.localcontext(ctx):
            same(score_round(inputs), committed_norm_caps(grid))

    results: list[tuple[ScoredRound, np.ndarray]] = []
    default = decimal.DefaultContext.copy()
    decimal.DefaultContext.traps[decimal.Inexact] = True  # what a new thread starts from
    decimal.DefaultContext.Emax = 5
    try:
        worker = threading.Thread(target=lambda: results.append((score_round(inputs), committed_norm_caps(grid))))
        worker.start()
        worker.join(timeout=120)
    finally:
        decimal.DefaultContext.traps[decimal.Inexact] = default.traps[decimal.Inexact]
        decimal.DefaultContext.Emax = default.Emax
    assert len(results) == 1, "the step raised in a thread started from a changed DefaultContext"
    same(*results[0])


def test_every_grid_cap_is_one_float64_whatever_the_40th_digit() -> None:
    """Committed log-norms lie on the ``2**-13`` grid in ``[-32, 32]``. Scaling by a power of two keeps a float64's
    distance to its rounding boundaries (in units of its last place), so the 8192 values ``2**(r / 8192)``, r < 8192,
    decide all 524,289: computed at 80 digits, the nearest is 6.9e-5 float64 units from a midpoint (r = 503), while
    a 40-digit result is within 5e-24 units of the exact value. So ``committed_norm_caps`` is ``1.5`` times the
    correctly rounded ``2**l`` on every machine, whichever decimal library computes the power (the pure-Python
    ``_pydecimal`` gives the same caps as libmpdec, whose non-integer powers are only "almost always correctly
    rounded") and however it rounds the 40th digit. ``-0.0`` and integers are exact; ``l`` outside the box, which
    no committed row has and whose cap could be infinite (``2**2000`` is), is refused (fixed: it was taken)."""
    fine = Context(prec=80, rounding=ROUND_HALF_EVEN, Emin=-999_999, Emax=999_999, traps=[])
    fractions = np.arange(8192) / 8192.0
    nearest = 1.0
    for r, cap in enumerate(committed_norm_caps(fractions).tolist()):
        exact = fine.power(Decimal(2), Decimal(r) / Decimal(8192))
        units = fine.multiply(exact, Decimal(2) ** 52)  # in [2**52, 2**53): float64 units of [1, 2)
        nearest = min(nearest, abs(float(fine.subtract(units, units.to_integral_value(rounding=ROUND_FLOOR))) - 0.5))
        assert cap == PAID_CLIP * float(exact)
    assert nearest > 1e-5

    rng = np.random.default_rng(8)
    sample = rng.integers(-32 * 8192, 32 * 8192 + 1, size=200) / 8192.0
    shifted = committed_norm_caps(sample)
    assert shifted.tolist() == [PAID_CLIP * float(fine.power(Decimal(2), Decimal(x))) for x in sample.tolist()]
    pure = _pydecimal.Context(prec=40, rounding=_pydecimal.ROUND_HALF_EVEN, Emin=-999_999, Emax=999_999)
    assert shifted.tolist() == [
        PAID_CLIP * float(pure.power(_pydecimal.Decimal(2), _pydecimal.Decimal(x))) for x in sample.tolist()
    ]
    for rounding in (ROUND_FLOOR, decimal.ROUND_CEILING):  # either neighbour of the 40-digit result
        ctx = Context(prec=40, rounding=rounding, Emin=-999_999, Emax=999_999, traps=[])
        assert shifted.tolist() == [PAID_CLIP * float(ctx.power(Decimal(2), Decimal(x))) for x in sample.tolist()]

    exact_points = committed_norm_caps(np.array([-0.0, 0.0, -32.0, 32.0, 1.0, -1.0, 5e-324]))
    assert exact_points.tolist() == [1.5, 1.5, 1.5 * 2.0**-32, 1.5 * 2.0**32, 3.0, 0.75, 1.5]
    for outside in (32.0 + 2.0**-13, -40.0, 2000.0, math.inf, math.nan):
        with pytest.raises(ValueError, match="log-norms"):
            committed_norm_caps(np.array([0.0, outside]))


def test_an_update_exactly_at_its_cap_is_not_clipped_and_one_float_longer_is() -> None:
    """The comparison ``|u|^2 > cap^2`` is exact, in rationals, on :func:`fixed_dot`'s float: an update whose squared
    norm is its cap's squared exactly (one entry 1.5 = 1.5 * 2**0) enters as it is, unclipped; the next float32 up
    is clipped to the cap, and its term is then no longer than the cap (its weight ``cap / |u| / count``)."""
    at_cap = np.zeros((2, 8), dtype=np.float32)
    at_cap[0, 0] = 1.5
    at_cap[1, 1] = 1.0
    caps = committed_norm_caps(np.zeros(2))
    paid = np.array([True, True])
    result = agreeing_clipped_mean(at_cap, paid, ~paid, max_step=1.0, paid_caps=caps)
    assert fixed_dot(at_cap[0], at_cap[0]) == caps[0] ** 2
    assert result.clipped.tolist() == [False, False] and result.weights.tolist() == [0.5, 0.5]
    longer = at_cap.copy()
    longer[0, 0] = np.nextafter(np.float32(1.5), np.float32(2))
    result = agreeing_clipped_mean(longer, paid, ~paid, max_step=1.0, paid_caps=caps)
    assert result.clipped.tolist() == [True, False]
    assert abs(float(longer[0, 0]) * result.weights[0] * 2 - 1.5) <= 2**-50
    assert result.step is not None and float(result.step[0]) == 0.75


# --------------------------------------------------------------------------- whose cap


@pytest.mark.parametrize("arrival", [[0, 1, 2, 3, 4], [4, 3, 2, 1, 0], [2, 4, 0, 3, 1]])
def test_each_paid_update_is_capped_by_its_own_committed_row_in_any_arrival_order(arrival: list[int]) -> None:
    """Five trainers committing in three orders; the rule reads the rows in arrival order, the step reads the
    updates in trainer order. Trainer 1 hides 1.4 times its norm of a poison (``|u| = 1.58 |s|``: clipped); trainer
    3 is honest and 1.8 times as long as the others (unflagged: its cap is 1.8 times theirs, enough to leave trainer
    1 unclipped had the step read trainer 3's column ``K`` for it). In every order exactly trainer 1 is clipped, the
    step is the same bits and the cap is trainer 1's own (its term's norm ``1.5 * 2**l_1 / 5``). A trainer paid
    for a row it published on chain has no update in the step: whatever sits in its update slot (here 1000 times a
    poison) changes no bit of it."""
    honest = agreeing_updates(5, seed=43)
    poison = np.random.default_rng(44).normal(size=num_params("mlp"))
    updates = [honest[0], SketchHiddenPoison(honest[1], poison, 1.4).at(SEED, K), honest[2], 1.8 * honest[3], honest[4]]
    scored = score_round(_inputs(updates, arrival))
    reference = score_round(_inputs(updates))
    assert not any(scored.flags) and all(s > 0 for s in scored.chain_scores)
    assert scored.clipped == [False, True, False, False, False]
    assert scored.aggregate is not None and reference.aggregate is not None
    assert scored.aggregate.tobytes() == reference.aggregate.tobytes()
    caps = committed_norm_caps(scored.rows[:, K])
    assert caps[3] > 1.6 * caps[1] and caps[3] ** 2 > fixed_dot(updates[1], updates[1]) > caps[1] ** 2
    step = agreeing_clipped_mean(np.stack(updates), np.ones(5, dtype=bool), np.zeros(5, dtype=bool), paid_caps=caps)
    assert step.step is not None and step.step.tobytes() == scored.aggregate.tobytes()
    assert step.weights[1] * 5 * math.sqrt(fixed_dot(updates[1], updates[1])) == pytest.approx(caps[1], rel=1e-12)

    published = _inputs(updates, arrival)
    published.published = {published.trainers[2]: "IpfsTimeout: the update did not come in time"}
    as_sent = score_round(published)  # its own update in the slot
    published.updates[2] = (1000 * poison).astype(np.float32)
    with_poison = score_round(published)
    assert as_sent.chain_scores[2] > 0 and as_sent.chain_scores == with_poison.chain_scores
    assert as_sent.aggregate is not None and with_poison.aggregate is not None
    assert as_sent.aggregate.tobytes() == with_poison.aggregate.tobytes()


# --------------------------------------------------------------------------- coalitions


@pytest.mark.parametrize("factor", [1.0, 30.0, 1000.0])
@pytest.mark.parametrize("sybils", [0, 3])
def test_a_paid_hidden_poison_and_sybils_move_the_step_within_the_cap_and_clip_no_honest_update(
    factor: float, sybils: int
) -> None:
    """Six honest paid trainers, a seventh paid one adding ``factor`` times its norm of a poison its sketch does not
    see, and ``sybils`` more sending 5 r along (the honest mean + the poison + noise): flagged ``boost``, unpaid,
    admitted (cosine above the bar the seventh lowers), each clipped to r. Uncapped the step moved 0.16 / 4.3 / 142 r
    along the poison (0.35 / 3.2 / 99 r with the Sybils); capped at most 0.26 r (0.43 r), within
    ``MAX_STEP (PAID_CLIP 2**l + k r) / (|P| + |A|)`` (0.32 r; 0.67 r), and no honest paid update is clipped: each
    cap is its own row's, and nothing another trainer sends changes an honest update's weight but the count."""
    honest = agreeing_updates(7, seed=61)
    rng = np.random.default_rng(62)
    poison = _unit(_invisible(rng.normal(size=num_params("mlp")), SEED, K))
    radius = float(np.median([np.linalg.norm(h.astype(np.float64)) for h in honest[:6]]))
    mean = _unit(np.sum(honest[:6], axis=0).astype(np.float64))
    crafted = [
        (5 * radius * _unit(mean + poison + 0.2 * _unit(np.random.default_rng(70 + j).normal(size=mean.size))))
        for j in range(sybils)
    ]
    updates = [*honest[:6], SketchHiddenPoison(honest[6], poison, factor).at(SEED, K), *crafted]
    scored = score_round(_inputs(updates))
    n = len(updates)
    paid = np.array(scored.chain_scores) > 0
    assert paid.tolist() == [True] * 7 + [False] * sybils
    assert scored.admitted == [False] * 7 + [True] * sybils
    assert scored.clipped == [False] * 6 + [factor > 1.0] + [False] * sybils
    assert scored.aggregate is not None
    along = float(scored.aggregate.astype(np.float64) @ poison)
    committed = float(np.linalg.norm(sketch(honest[6], K, SEED)))
    background = sum(abs(float(h.astype(np.float64) @ poison)) for h in honest[:6])  # the honest ones' own share
    assert along <= MAX_STEP * (PAID_CLIP * committed + sybils * radius + background) / n * (1 + 1e-3)
    uncapped = agreeing_clipped_mean(np.stack(updates).astype(np.float32), paid, ~paid).step
    assert uncapped is not None
    if factor >= 30:
        assert float(uncapped.astype(np.float64) @ poison) > 3 * radius > 5 * along


def test_a_round_with_two_valid_rows_bounds_a_paid_update_by_its_partners_sketch() -> None:
    """Two trainers (a project may have ``minTrainers`` 2, or the others may not reveal): the second sends an
    agreeing update 2**20 times as long, plus as much again of a poison its sketch does not see (``|u| = 1.41 |s|``:
    under its cap). With fewer than three valid rows the rule flags nobody, so it is paid (its size factor at most
    2). Its cap counted ``l`` as it is (``1.5 * 2**l``, ``l`` 20 above its partner's): the step moved 5.4e5 times the
    partner's sketch norm along the poison. Fixed: the cap counts ``l`` at most ``PAID_LOG_SPREAD`` above the paid
    updates' lower median (here the partner's), so the update is clipped to ``1.5 * 2 * |s_0|`` and the step moves
    at most ``MAX_STEP * PAID_CLIP * 2 * |s_0| / 2`` along the poison; the partner is not clipped."""
    honest = agreeing_updates(2, seed=45)
    poison = np.random.default_rng(46).normal(size=num_params("mlp"))
    attacker = SketchHiddenPoison((2.0**20 * honest[1]).astype(np.float32), poison, 1.0).at(SEED, K)
    scored = score_round(_inputs([honest[0], attacker]))
    assert not any(scored.flags) and all(s > 0 for s in scored.chain_scores)
    assert scored.clipped == [False, True]
    assert scored.aggregate is not None
    along = float(scored.aggregate.astype(np.float64) @ _unit(_invisible(poison, SEED, K)))
    partner = float(np.linalg.norm(sketch(honest[0], K, SEED)))
    assert along <= MAX_STEP * PAID_CLIP * 2 * partner / 2, f"the poison moved the model {along / partner:.3g} |s_0|"


# --------------------------------------------------------------------------- against anvil and IPFS


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    with local_stack(tmp_path_factory.mktemp("stack"), 8) as s:
        yield s


def test_an_aggregator_whose_process_traps_inexact_finalizes_the_round_the_audit_recomputes(stack: LocalStack) -> None:
    """Four trainers on anvil and IPFS, the fourth hiding 30 times its norm of a poison (clipped). The aggregator's
    node runs in a thread whose decimal context traps ``Inexact`` (money code sharing its process). Before the fix
    the caps inherited that context: ``score_round`` raised ``decimal.Inexact`` and the round could not be finalized
    (the audit, in the default context, computes it). Now it finalizes, and the audit in the default context agrees
    bit for bit and names the fourth update clipped."""
    honest = agreeing_updates(4, seed=47)
    attacker = SketchHiddenPoison(honest[3], np.random.default_rng(48).normal(size=num_params("mlp")), 30.0)
    sources = [FixedUpdate(honest[0]), FixedUpdate(honest[1]), FixedUpdate(honest[2]), attacker]
    rnd = revealed_round(stack, sources)
    pid, agg = rnd.pid, rnd.aggregator
    outcome: list[RoundReport | BaseException | None] = []

    def aggregate() -> None:
        decimal.getcontext().traps[decimal.Inexact] = True  # this thread's context only
        try:
            outcome.append(step_through_disputes(AggregatorNode(agg, stack.store), pid))
        except BaseException as exc:  # reported below, with its type
            outcome.append(exc)

    worker = threading.Thread(target=aggregate)
    worker.start()
    worker.join(timeout=600)
    assert len(outcome) == 1, "the aggregator's step did not end in 600 s"
    report = outcome[0]
    assert isinstance(report, RoundReport) and report.tx_hash, f"the aggregator failed: {report!r}"
    audit = audit_round(stack.admin, stack.store, pid, 0)
    assert audit.agrees
    assert [t.clipped for t in audit.trainers] == [False, False, False, True]
