"""Contribution scores: the cheap per-round paying score and reference valuations.

Paying score (``projection_scores``)
------------------------------------
Given N x D updates (or sketches) ``u_i``, the active mask and the outlier flags, let
``I = {i : active_i and not flagged_i}`` (the inliers) and

    g     = (1 / |I|) * sum_{j in I} u_j          (robust aggregate: plain mean of inliers)
    p_i   = max(0, <u_i, g>)                       for i in I;  p_i = 0 otherwise
    score_i = p_i / sum_{j in I} p_j

so scores are shares in [0, 1] summing to 1 (or all 0 when ``I`` is empty or ``g = 0``).
Because ``sum_{j in I} <u_j, g> = |I| * ||g||^2 > 0`` whenever ``g != 0``, the
denominator is positive exactly when ``g != 0``. Multiplying every update by ``c > 0``
multiplies each ``p_i`` by ``c^2``, which cancels: the score is scale-invariant. The mean
is unweighted on purpose - self-reported sample counts are not trusted for payment.

It is array math only (a mean, a matmul, a ReLU, one sum and a division), so it can be
re-expressed as a torch module for an ezkl proof; a circuit may also output the
un-normalised ``p`` and leave the final division to the contract (``normalize=False``).

Known limitation: ``<u_i, g>`` contains the self term ``||u_i||^2 / |I|``, so an unflagged
row inflated with noise or scaled up gains score; the flags (distance threshold, norm
band) bound how much such a row can deviate before it is excluded and paid nothing.

Reference valuations
--------------------
``utility(S) -> float`` maps a subset of trainer indices to e.g. validation accuracy or
negative loss of the global model after applying the FedAvg of that subset's updates
(``utility(frozenset())`` = the unchanged global model). ``leave_one_out``,
``exact_shapley`` (all 2^N subsets, N <= 12) and ``gtg_shapley`` (Liu et al. 2022)
are computed against it; ``spearman`` compares rankings.
"""

from __future__ import annotations

from collections.abc import Callable
from math import factorial

import numpy as np

Utility = Callable[[frozenset[int]], float]
MAX_EXACT_N = 12


def inlier_mask(active_mask: np.ndarray, flags: np.ndarray) -> np.ndarray:
    """``active and not flagged``, as a bool array."""
    return np.asarray(active_mask, dtype=bool) & ~np.asarray(flags, dtype=bool)


def projection_scores(
    updates: np.ndarray, active_mask: np.ndarray, flags: np.ndarray, normalize: bool = True
) -> np.ndarray:
    """The paying score: clipped projection of each inlier onto the inlier mean (see module doc).

    Args:
        updates: N x D float array (full updates or their sketches).
        active_mask: bool (N,), True for trainers that submitted.
        flags: bool (N,), True for rows flagged as outliers.
        normalize: divide by the sum so that scores are shares summing to 1; when False
            return the raw ``p_i = max(0, <u_i, g>)`` (not scale-invariant).

    Returns:
        float64 (N,), >= 0, exactly 0 for flagged and inactive rows.
    """
    u = np.asarray(updates, dtype=np.float64)
    keep = inlier_mask(active_mask, flags)
    scores = np.zeros(u.shape[0])
    if not keep.any():
        return scores
    if normalize:
        # Shares do not depend on a common scale; dividing by the largest inlier entry first keeps
        # tiny (or huge) updates from under- (over-)flowing in the dot products.
        peak = float(np.abs(u[keep]).max())
        if peak > 0:
            u = u / peak
    g = u[keep].mean(axis=0)
    p = np.where(keep, np.maximum(u @ g, 0.0), 0.0)
    if not normalize:
        return p
    total = p.sum()
    return p / total if total > 0 else scores


def leave_one_out(utility: Utility, n: int) -> np.ndarray:
    """``LOO_i = v(N) - v(N \\ {i})``; n + 1 utility calls."""
    full = frozenset(range(n))
    v_full = utility(full)
    return np.array([v_full - utility(full - {i}) for i in range(n)])


def exact_shapley(utility: Utility, n: int) -> np.ndarray:
    """Exact Shapley values from all 2^n subsets (n <= ``MAX_EXACT_N``).

    ``phi_i = sum_{S not containing i} |S|! (n-|S|-1)! / n! * (v(S + i) - v(S))``.
    """
    if not 0 < n <= MAX_EXACT_N:
        raise ValueError(f"exact Shapley needs 1 <= n <= {MAX_EXACT_N}, got {n}")
    masks = np.arange(1 << n)
    values = np.array([utility(frozenset(i for i in range(n) if m >> i & 1)) for m in masks], dtype=np.float64)
    sizes = np.array([int(m).bit_count() for m in masks])
    weights = np.array([factorial(s) * factorial(n - s - 1) / factorial(n) for s in range(n)])
    phi = np.zeros(n)
    for i in range(n):
        without = masks[(masks >> i & 1) == 0]
        phi[i] = np.sum(weights[sizes[without]] * (values[without | (1 << i)] - values[without]))
    return phi


def gtg_shapley(
    utility: Utility,
    n: int,
    seed: int = 0,
    eps_between: float = 1e-4,
    eps_within: float = 1e-3,
    max_iters: int = 50,
    min_iters: int = 3,
    tol: float = 0.02,
) -> np.ndarray:
    """GTG-Shapley (Liu et al. 2022): guided Monte-Carlo permutations with truncation.

    * Between-round truncation: if ``|v(N) - v({})| < eps_between`` the round added no
      value and every estimate is 0.
    * Guided sampling: each iteration draws n permutations, the k-th one starting with
      trainer k, the rest in random order.
    * Within-round truncation: while walking a permutation, once
      ``|v(N) - v(prefix)| < eps_within`` the remaining marginal gains are taken as 0
      (no further utility calls).
    * Stops after ``min_iters`` iterations once the largest change of any estimate over an
      iteration is below ``tol * |v(N) - v({})|``, or after ``max_iters``.

    Utility values are memoised per subset.
    """
    cache: dict[frozenset[int], float] = {}

    def v(s: frozenset[int]) -> float:
        if s not in cache:
            cache[s] = float(utility(s))
        return cache[s]

    v0, v_full = v(frozenset()), v(frozenset(range(n)))
    phi = np.zeros(n)
    if abs(v_full - v0) < eps_between:
        return phi
    rng = np.random.default_rng(seed)
    count = 0
    for it in range(max_iters):
        before = phi.copy()
        for first in range(n):
            rest = rng.permutation([j for j in range(n) if j != first])
            perm = [first, *rest.tolist()]
            marginal = np.zeros(n)
            prefix: frozenset[int] = frozenset()
            v_prev = v0
            for j in perm:
                if abs(v_full - v_prev) < eps_within:
                    break
                prefix = prefix | {j}
                v_now = v(prefix)
                marginal[j] = v_now - v_prev
                v_prev = v_now
            count += 1
            phi += (marginal - phi) / count
        if it + 1 >= min_iters and np.max(np.abs(phi - before)) < tol * abs(v_full - v0):
            break
    return phi


def rankdata(a: np.ndarray) -> np.ndarray:
    """Ranks 1..n with ties given their average rank."""
    x = np.asarray(a, dtype=np.float64).reshape(-1)
    order = np.argsort(x, kind="stable")
    ranks = np.empty(x.size)
    sorted_x = x[order]
    i = 0
    while i < x.size:
        j = i
        while j + 1 < x.size and sorted_x[j + 1] == sorted_x[i]:
            j += 1
        ranks[order[i : j + 1]] = (i + j) / 2.0 + 1.0
        i = j + 1
    return ranks


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman rank correlation (Pearson on average ranks); NaN if either is constant."""
    ra, rb = rankdata(a), rankdata(b)
    if ra.size != rb.size:
        raise ValueError("length mismatch")
    da, db = ra - ra.mean(), rb - rb.mean()
    denom = float(np.sqrt(np.sum(da * da) * np.sum(db * db)))
    return float(np.sum(da * db) / denom) if denom > 0 else float("nan")
