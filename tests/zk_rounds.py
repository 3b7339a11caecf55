"""Adversarial rounds for the round circuit's property tests (``tests/test_zk_gram.py``): integer rows
at scale ``2**13`` built slot by slot from a :class:`RoundSpec`, with the boundary cases of the rule
hit exactly (duplicate distance, unit-norm tolerance, lazy and boost thresholds: each at the
threshold and one unit either side).

A spec is independent of the circuit's size: its slot kinds repeat over the N slots, and numbers
come from its seed, so one ``@example`` serves every size. It also names the owner's reference row
(:func:`build_reference`, :data:`REFERENCES`): none (the zero row), or one that agrees with the round,
disagrees, is far, invalid, absent, at the unit-norm boundaries, or a mixture of the trainers' rows.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from hypothesis import strategies as st

from marketplace.protocol.constants import LOG_CLIP, SCALE
from marketplace.rule.gram import GramConfig, gram_rule_int

ONE = 1 << SCALE
CFG = GramConfig()


def _c(value: float) -> int:
    """A constant as the circuit stores it (rounded at scale 13, half away from zero)."""
    v = value * ONE
    return int(np.sign(v) * np.floor(abs(v) + 0.5))


def _rescale(v: np.ndarray | int) -> np.ndarray:
    a = np.asarray(v, dtype=np.int64)
    return np.sign(a) * ((np.abs(a) + ONE // 2) // ONE)


#: Slot kinds. ``honest``: a noisy copy of the round's base direction; ``copy``: an exact copy of an
#: earlier slot's row; ``near-1/near/near+1``: a unit row at squared distance ``DUP - 1``, ``DUP``,
#: ``DUP + 1`` units from an earlier slot; ``flip``: an earlier slot with its sketch negated;
#: ``lazy*``/``boost*``: an honest row whose log-norm is the lazy/boost threshold (the round's
#: ``lam`` minus log2 10, plus 1) plus -1, 0, +1 units; ``qlo*``/``qhi*``: a row inside the box with
#: ``q`` at ``1 - tol`` / ``1 + tol`` plus -1, 0, +1 units (valid at the threshold, not beyond);
#: ``zero``: a zero sketch; ``absent``: the zero row; ``worst``: entries and log-norm at the box's
#: corners (norm^2 = K).
KINDS = (
    "honest", "copy", "near-1", "near", "near+1", "flip",
    "lazy-1", "lazy", "lazy+1", "boost-1", "boost", "boost+1",
    "qlo-1", "qlo", "qlo+1", "qhi-1", "qhi", "qhi+1",
    "zero", "absent", "worst",
)  # fmt: skip
_DELTA = {"-1": -1, "": 0, "+1": 1}


#: The owner's reference row (:func:`build_reference`). ``none``: the zero row (no reference);
#: ``agree``: the unit vector along the round's base direction (the honest trainers' consensus);
#: ``disagree``: its negation; ``far``: a random unit vector (about orthogonal to everyone);
#: ``copy``: an exact copy of the first present slot's row; ``mix``: a random mixture of the present
#: slots' sketches (weights in [-1, 1]), normalised; ``inactive``: ``agree`` with ``a_r = 0``;
#: ``invalid``: ``agree`` scaled by 1.05 (present, not a unit vector); ``qlo*``/``qhi*``: ``agree``
#: with ``q_r`` at ``1 - tol`` / ``1 + tol`` plus -1, 0, +1 units; ``worst``: entries at +-1.
REFERENCES = (
    "none", "agree", "disagree", "far", "copy", "mix", "inactive", "invalid",
    "qlo-1", "qlo", "qlo+1", "qhi-1", "qhi", "qhi+1", "worst",
)  # fmt: skip


@dataclass(frozen=True)
class RoundSpec:
    """One round: ``kinds`` (repeated over the slots), ``seed`` (directions, noise, log-norms),
    ``valid_cap`` (if set: every valid slot after the first ``valid_cap`` becomes absent, for rounds
    with 0-3 valid slots around ``min_valid``) and the owner's ``reference`` (:data:`REFERENCES`)."""

    seed: int
    kinds: tuple[str, ...]
    valid_cap: int | None = None
    reference: str = "none"


SPECS = st.builds(
    RoundSpec,
    seed=st.integers(0, 2**32 - 1),
    kinds=st.lists(st.sampled_from(KINDS), min_size=1, max_size=12).map(tuple),
    valid_cap=st.none() | st.integers(0, 3),
    reference=st.sampled_from(REFERENCES),
)


def _kind(kind: str) -> tuple[str, int]:
    for stem in ("near", "lazy", "boost", "qlo", "qhi"):
        if kind.startswith(stem):
            return stem, _DELTA[kind[len(stem) :]]
    return kind, 0


def _unit(v: np.ndarray) -> np.ndarray:
    """The integer sketch of the unit vector along ``v`` (rounded to the grid)."""
    norm = float(np.linalg.norm(v))
    u = v / norm if norm > 0 else np.zeros_like(v)
    return np.clip(np.round(u * ONE), -ONE, ONE).astype(np.int64)


def _q(v: np.ndarray) -> int:
    return int(_rescale(int(v @ v)))


def _unit_ok(v: np.ndarray) -> bool:
    return _c(1.0 - CFG.unit_tol) <= _q(v) <= _c(1.0 + CFG.unit_tol)


def _q_rows(w: np.ndarray) -> np.ndarray:
    return _rescale(np.einsum("ij,ij->i", w, w))


def _first_move(v: np.ndarray, hit: Callable[[np.ndarray], np.ndarray], span: int = 400) -> np.ndarray | None:
    """``v`` with one coordinate (of its 4 largest) moved by the smallest ``|t| <= span`` for which
    ``hit`` holds (``hit`` maps stacked rows to a boolean per row), or None."""
    steps = np.array(sorted(range(-span, span + 1), key=abs))
    for c in np.argsort(-np.abs(v))[:4]:
        w = np.repeat(v[None, :], len(steps), axis=0)
        w[:, c] = np.clip(w[:, c] + steps, -ONE, ONE)
        ok = np.flatnonzero(hit(w))
        if ok.size:
            return w[ok[0]]
    return None


def _near(u: np.ndarray, target: int, rng: np.random.Generator) -> np.ndarray:
    """A unit row at squared distance exactly ``target`` units from ``u`` (an exact copy if none is found)."""
    lo, hi = _c(1.0 - CFG.unit_tol), _c(1.0 + CFG.unit_tol)

    def hit(w: np.ndarray) -> np.ndarray:
        q = _q_rows(w)
        return (_q(u) + q - 2 * _rescale(w @ u) == target) & (q >= lo) & (q <= hi)

    for _ in range(4):
        step = rng.normal(size=u.shape[0])
        w = _first_move(_unit(u / ONE + step / np.linalg.norm(step) * np.sqrt(target / ONE)), hit)
        if w is not None:
            return w
    return u.copy()


def _q_at(v: np.ndarray, target: int) -> np.ndarray:
    """``v`` scaled so that ``q`` is exactly ``target`` units (``v`` itself if none is found)."""
    w = _first_move(np.round(v * np.sqrt(target / ONE)).astype(np.int64), lambda w: _q_rows(w) == target)
    return v if w is None else w


def build_round(spec: RoundSpec, n: int, k: int) -> np.ndarray:
    """The (n, k + 2) integer rows of ``spec`` at scale ``2**13`` (inputs: these divided by 2**13)."""
    rng = np.random.default_rng(spec.seed)
    base = rng.normal(size=k)
    spread = rng.uniform(0.1, 1.5)
    lam0 = rng.uniform(-8, 8)
    rows = np.zeros((n, k + 2), dtype=np.int64)
    kinds = [_kind(spec.kinds[i % len(spec.kinds)]) for i in range(n)]
    valid_before: list[int] = []

    def honest() -> np.ndarray:
        return _unit(base + rng.normal(size=k) * spread)

    for i, (kind, delta) in enumerate(kinds):
        earlier = valid_before[int(rng.integers(len(valid_before)))] if valid_before else None
        lg = _c(float(np.clip(lam0 + rng.normal() * 0.4, -LOG_CLIP, LOG_CLIP)))
        if kind == "absent":
            continue
        if kind == "zero":
            v, lg = np.zeros(k, dtype=np.int64), -_c(LOG_CLIP)
        elif kind == "worst":
            v = np.where(rng.random(k) < 0.5, -ONE, ONE).astype(np.int64)
            lg = _c(LOG_CLIP) * int(rng.choice([-1, 1]))
        elif kind in ("copy", "near", "flip") and earlier is not None:
            u = rows[earlier, :k]
            if kind == "copy":
                v, lg = u.copy(), int(rows[earlier, k]) if rng.random() < 0.5 else lg
            elif kind == "flip":
                v = -u
            else:
                v = _near(u, _c(CFG.dup_dist) + delta, rng)
        elif kind == "qlo":
            v = _q_at(honest(), _c(1.0 - CFG.unit_tol) + delta)
        elif kind == "qhi":
            v = _q_at(honest(), _c(1.0 + CFG.unit_tol) + delta)
        else:  # honest, lazy, boost (log-norms set below), or a copy with nothing before it
            v = honest()
        rows[i, :k], rows[i, k], rows[i, k + 1] = v, lg, ONE
        if _unit_ok(v):
            valid_before.append(i)
    if spec.valid_cap is not None:
        for i in valid_before[spec.valid_cap :]:
            rows[i] = 0
    # log-norms at the lazy / boost thresholds of the round's lam (which they may move: a few passes)
    targets = [(i, kind, delta) for i, (kind, delta) in enumerate(kinds) if kind in ("lazy", "boost") and rows[i, -1]]
    for _ in range(3):
        lam = int(gram_rule_int(rows).stats["lam"])
        for i, kind, delta in targets:
            edge = lam - _c(CFG.lazy_log2) if kind == "lazy" else lam + _c(CFG.boost_log2)
            rows[i, k] = int(np.clip(edge + delta, -_c(LOG_CLIP), _c(LOG_CLIP)))
    return rows


def build_reference(spec: RoundSpec, rows: np.ndarray) -> np.ndarray:
    """The owner's reference row of ``spec`` (``k + 2`` integers at scale ``2**13``) for the round
    ``rows`` (:func:`build_round`'s): see :data:`REFERENCES`. The round's base direction is the one
    :func:`build_round` drew from the same seed."""
    k = rows.shape[1] - 2
    kind, delta = _kind(spec.reference)
    ref = np.zeros(k + 2, dtype=np.int64)
    if kind == "none":
        return ref
    rng = np.random.default_rng(spec.seed)
    base = rng.normal(size=k)  # build_round's first draw
    rng = np.random.default_rng([spec.seed, 1])
    present = np.flatnonzero(rows[:, k + 1])
    v = _unit(base)
    if kind == "disagree":
        v = -v
    elif kind == "far":
        v = _unit(rng.normal(size=k))
    elif kind == "copy" and present.size:
        return rows[present[0]].copy()
    elif kind == "mix" and present.size:
        v = _unit(rng.uniform(-1, 1, size=present.size) @ (rows[present, :k] / ONE))
    elif kind == "invalid":
        v = np.clip(np.round(v * 1.05), -ONE, ONE).astype(np.int64)
    elif kind == "worst":
        v = np.where(rng.random(k) < 0.5, -ONE, ONE).astype(np.int64)
    elif kind == "qlo":
        v = _q_at(v, _c(1.0 - CFG.unit_tol) + delta)
    elif kind == "qhi":
        v = _q_at(v, _c(1.0 + CFG.unit_tol) + delta)
    ref[:k] = v
    ref[k] = _c(float(rng.uniform(-8, 8)))
    ref[k + 1] = 0 if kind == "inactive" else ONE
    return ref


def worst_rows(n: int, k: int) -> np.ndarray:
    """The worst rows inside the box, as integers: entries at +-1 (norm^2 = K), log-norms at +-32,
    a zero sketch; none is a unit vector."""
    rows = np.zeros((n, k + 2), dtype=np.int64)
    rows[:, :k] = ONE
    rows[1::3, :k] = -ONE
    rows[2::3, : k // 2] = -ONE
    rows[:, k] = np.resize([32, -32, 32, -32, 0, 0, 32, -32], n) * ONE
    rows[:, k + 1] = ONE
    rows[3, :k] = 0
    return rows
