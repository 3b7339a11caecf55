"""Outlier flags over an N x D array of updates (or their sketches).

Row ``i`` is *active* when trainer ``i`` submitted an update this round. Inactive rows
are ignored for every statistic and are never flagged. Every rule here is invariant to
multiplying all rows by the same ``c > 0`` (and to permuting coordinates).
"""

from __future__ import annotations

import numpy as np

MIN_ACTIVE = 3
"""With fewer active rows no majority exists, so no rule flags anything."""


def _check(updates: np.ndarray, active_mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    u = np.asarray(updates, dtype=np.float64)
    if u.ndim != 2:
        raise ValueError(f"expected an N x D array, got shape {u.shape}")
    active = np.asarray(active_mask, dtype=bool).reshape(-1)
    if active.shape[0] != u.shape[0]:
        raise ValueError(f"mask length {active.shape[0]} != {u.shape[0]} rows")
    return u, active


def coordinate_median(updates: np.ndarray, active_mask: np.ndarray) -> np.ndarray:
    """Coordinate-wise median of the active rows (mean of the two middle values if even)."""
    u, active = _check(updates, active_mask)
    if not active.any():
        return np.zeros(u.shape[1])
    return np.median(u[active], axis=0)


def median_distances(updates: np.ndarray, active_mask: np.ndarray) -> np.ndarray:
    """``d_i = ||u_i - m||_2`` with ``m`` the coordinate-wise median of active rows; 0 if inactive."""
    u, active = _check(updates, active_mask)
    d = np.linalg.norm(u - coordinate_median(u, active), axis=1)
    return np.where(active, d, 0.0)


def median_distance_flags(
    updates: np.ndarray, active_mask: np.ndarray, threshold: float = 2.0, directions: bool = False
) -> np.ndarray:
    """Flag active rows far from the coordinate-wise median.

    Definition, over the set A of active rows (needs ``|A| >= MIN_ACTIVE``):

        m   = coordinate-wise median of {u_j : j in A}
        d_i = ||u_i - m||_2
        r   = median of {d_j : j in A}
        flagged_i = (i in A) and d_i > threshold * r

    Scaling every row by ``c > 0`` scales all ``d_i`` and ``r`` by ``c``, so flags are
    scale-invariant. If ``r == 0`` (a majority coincides with the median) every active row
    that differs from it at all is flagged. With a majority of honest rows, ``m`` and
    ``r`` are determined by honest rows, so an attacker cannot shift the yardstick.

    With ``directions=True`` every row is first scaled to unit norm (:func:`unit_rows`), so
    the test looks at directions only; honest trainers doing very different amounts of
    local work (data sizes) are then not flagged for their norm, and boosted updates must
    be caught by :func:`norm_flags` instead.
    """
    u, active = _check(updates, active_mask)
    if directions:
        u = unit_rows(u)
    flags = np.zeros(u.shape[0], dtype=bool)
    if active.sum() < MIN_ACTIVE:
        return flags
    d = median_distances(u, active)
    r = float(np.median(d[active]))
    return active & (d > threshold * r)


def opposing_flags(updates: np.ndarray, active_mask: np.ndarray) -> np.ndarray:
    """Flag active rows that point against the consensus: ``<u_i, m> < 0`` with ``m`` the
    coordinate-wise median of the active rows (needs ``|A| >= MIN_ACTIVE``).

    Sign-flipped and label-flipped updates oppose the honest majority's direction; honest
    updates, even on label-skewed data, share its common component. Zero rows (``<0, m> = 0``)
    are left to :func:`norm_flags`. Scale-invariant (one dot product and a sign).
    """
    u, active = _check(updates, active_mask)
    if active.sum() < MIN_ACTIVE:
        return np.zeros(u.shape[0], dtype=bool)
    return active & (u @ coordinate_median(u, active) < 0)


def multi_krum_flags(updates: np.ndarray, active_mask: np.ndarray, f: int) -> np.ndarray:
    """Multi-Krum (Blanchard et al. 2017): flag the ``f`` active rows with the worst Krum score.

    With n active rows, the score of active row i is the sum of squared distances to its
    ``n - f - 2`` nearest other active rows; the ``m = n - f`` lowest scores are kept,
    the rest flagged (ties broken by row index). Needs ``n > f + 2``; otherwise nothing is
    flagged. Note Multi-Krum always flags exactly ``f`` rows, honest or not.
    """
    u, active = _check(updates, active_mask)
    flags = np.zeros(u.shape[0], dtype=bool)
    idx = np.flatnonzero(active)
    n = idx.size
    if f <= 0 or n <= f + 2 or n < MIN_ACTIVE:
        return flags
    a = u[idx]
    sq = np.sum(a * a, axis=1)
    dist2 = np.maximum(sq[:, None] + sq[None, :] - 2.0 * a @ a.T, 0.0)
    np.fill_diagonal(dist2, np.inf)
    k = n - f - 2
    scores = np.sort(dist2, axis=1)[:, :k].sum(axis=1)
    order = np.lexsort((idx, scores))  # by score, then by row index
    flags[idx[order[n - f :]]] = True
    return flags


def norm_flags(
    updates: np.ndarray,
    active_mask: np.ndarray,
    min_ratio: float = 0.1,
    max_ratio: float = float("inf"),
) -> np.ndarray:
    """Flag active rows whose norm is outside ``[min_ratio, max_ratio] * median active norm``.

    ``||u_i|| < min_ratio * M`` catches lazy zero / near-zero "free-rider" updates even when
    they are not far from the median (a zero row sits at distance ``||m||``, which can be
    typical); ``||u_i|| > max_ratio * M`` catches boosted updates when the distance test
    runs on directions only. ``M`` is the median norm over active rows. Scale-invariant.
    Needs ``|A| >= MIN_ACTIVE``.
    """
    u, active = _check(updates, active_mask)
    flags = np.zeros(u.shape[0], dtype=bool)
    if active.sum() < MIN_ACTIVE:
        return flags
    norms = np.linalg.norm(u, axis=1)
    ref = float(np.median(norms[active]))
    return active & ((norms < min_ratio * ref) | (norms > max_ratio * ref))


def unit_rows(updates: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm (zero rows stay zero)."""
    u = np.asarray(updates, dtype=np.float64)
    norms = np.linalg.norm(u, axis=1, keepdims=True)
    return np.divide(u, norms, out=np.zeros_like(u), where=norms > 0)


def duplicate_flags(
    updates: np.ndarray, active_mask: np.ndarray, rel_tol: float = 1e-3, order: np.ndarray | None = None
) -> np.ndarray:
    """Flag every active row that (nearly) duplicates another active row.

    Rows i != j are duplicates when ``||u_i - u_j|| <= rel_tol * r`` with ``r`` the median
    distance-to-median of :func:`median_distance_flags` (exact equality when ``r == 0``).

    Without ``order`` all members of a duplicate group are flagged (identical updates imply
    collusion, and none of the copies should be paid twice). With ``order`` (e.g. each row's
    position in the on-chain submission sequence; lower = earlier) the earliest member of a
    group is kept and only the later ones are flagged: an update published on IPFS can be
    copied by a free rider, but only after the original was submitted.
    """
    u, active = _check(updates, active_mask)
    flags = np.zeros(u.shape[0], dtype=bool)
    idx = np.flatnonzero(active)
    if idx.size < 2:
        return flags
    a = u[idx]
    r = float(np.median(median_distances(u, active)[idx])) if idx.size >= MIN_ACTIVE else 0.0
    diff = np.stack([np.linalg.norm(a - row, axis=1) for row in a])
    np.fill_diagonal(diff, np.inf)
    close = diff <= rel_tol * r
    if order is not None:
        rank = np.asarray(order)[idx]
        close &= rank[None, :] < rank[:, None]  # row i is flagged only for an earlier twin j
    flags[idx[close.any(axis=1)]] = True
    return flags
