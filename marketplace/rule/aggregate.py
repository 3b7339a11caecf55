"""Weighted FedAvg of the inlier updates, and (research) the step that also admits agreeing unpaid updates."""

from __future__ import annotations

import numpy as np


def aggregation_weights(
    active_mask: np.ndarray, flags: np.ndarray, num_samples: np.ndarray | None = None
) -> np.ndarray:
    """Normalised FedAvg weights: ``w_i = n_i / sum_{j in I} n_j`` on inliers I, 0 elsewhere.

    ``num_samples=None`` means equal weights (``n_i = 1``). Returns all zeros when there is
    no inlier or the inliers' sample counts sum to 0.
    """
    keep = np.asarray(active_mask, dtype=bool) & ~np.asarray(flags, dtype=bool)
    n = np.ones(keep.shape[0]) if num_samples is None else np.asarray(num_samples, dtype=np.float64)
    if np.any(n < 0):
        raise ValueError("sample counts must be >= 0")
    raw = np.where(keep, n, 0.0)
    total = raw.sum()
    return raw / total if total > 0 else np.zeros_like(raw)


def fedavg(
    updates: np.ndarray,
    active_mask: np.ndarray,
    flags: np.ndarray,
    num_samples: np.ndarray | None = None,
) -> np.ndarray | None:
    """``sum_i w_i * u_i`` with :func:`aggregation_weights`; float32 of length D.

    Returns ``None`` when there is nothing to aggregate (no inlier, or zero total weight).
    ``None`` means "no update this round": the caller keeps the current global model,
    which is different from applying a zero update only in that nobody contributed.
    """
    w = aggregation_weights(active_mask, flags, num_samples)
    if not w.any():
        return None
    u = np.asarray(updates)
    rows = np.flatnonzero(w)
    # accumulate only the inliers, in float64, to keep D = 1e7 cheap and exact-ish
    total = np.zeros(u.shape[1], dtype=np.float64)
    for i in rows:
        total += w[i] * u[i]
    return total.astype(np.float32)


def apply_update(global_vector: np.ndarray, update: np.ndarray | None) -> np.ndarray:
    """New flat global vector ``global + update`` (unchanged copy when ``update is None``)."""
    g = np.asarray(global_vector, dtype=np.float32)
    return g.copy() if update is None else (g + update).astype(np.float32)


#: An unpaid update this close in direction to a paid or already admitted one is a copy and stays out:
#: cosine ``>= 1 - 2**-7``, the rule's duplicate distance (``GramConfig.dup_dist`` = ``||u - v||^2 <= 2**-6``
#: on unit vectors).
COPY_COS = 1.0 - 2.0**-7


def agreeing_admitted(updates: np.ndarray, paid: np.ndarray, candidates: np.ndarray) -> np.ndarray:
    """The unpaid updates whose direction agrees with the paid ones (boolean mask over the N updates).

    With ``g`` the mean of the paid updates and ``cos_i = <u_i, g> / (|u_i| |g|)``, update ``j`` is admitted
    exactly when it is a candidate, not paid, nonzero, ``cos_j > max(0, min_{i paid} cos_i)`` (it agrees
    with the paid mean positively and at least as much as the least agreeing paid update), and it is not a
    copy (cosine ``>= COPY_COS``) of a paid update or of an admitted update of lower index. Consequences:
    an update pointing against the paid mean (``cos <= 0``: a sign flip of any update that agrees with it)
    never enters; a scaled copy of an honest update enters exactly when that update's direction would;
    nothing enters when nobody is paid or the paid mean is 0.
    """
    u = np.asarray(updates, dtype=np.float64)
    paid = np.asarray(paid, dtype=bool)
    cand = np.asarray(candidates, dtype=bool) & ~paid
    admitted = np.zeros(u.shape[0], dtype=bool)
    if not paid.any():
        return admitted
    g = u[paid].mean(axis=0)
    g_norm = float(np.linalg.norm(g))
    norms = np.linalg.norm(u, axis=1)
    if g_norm == 0.0:
        return admitted
    cos = (u @ g) / np.where(norms > 0, norms * g_norm, 1.0)
    bar = max(0.0, float(cos[paid].min()))
    unit = u / np.where(norms > 0, norms, 1.0)[:, None]
    kept = paid.copy()
    for j in np.flatnonzero(cand & (norms > 0) & (cos > bar)):
        if float((unit[kept] @ unit[j]).max()) < COPY_COS:
            admitted[j] = kept[j] = True
    return admitted


def agreeing_clipped_mean(
    updates: np.ndarray, paid: np.ndarray, candidates: np.ndarray, max_step: float = 1.0
) -> tuple[np.ndarray | None, np.ndarray]:
    """The model's step from the paid updates and the unpaid ones that agree with them (research, issue 16).

    ``(step, admitted)``: ``admitted`` is :func:`agreeing_admitted`; with ``r`` the median norm of the
    paid updates, ``step`` is the equal-weight mean over the paid updates ``u_i`` as they are and the
    admitted ones clipped to norm ``r`` (``u_j min(1, r / |u_j|)``), then, when ``max_step > 1``, lengthened
    by ``clip(r / |mean|, 1, max_step)`` (a server step towards the paid updates' median length, never
    shortened, at most ``max_step`` times); float32 of length D, ``None`` when nobody is paid.
    Pay is not this function's business: admitted updates earn nothing. With nothing admitted and
    ``max_step = 1`` the step is :func:`fedavg` of the paid updates with equal weights, bit for bit. Each
    admitted update's term has norm at most ``r / (|P| + |A|)`` (P paid, A admitted), whatever its own norm.
    """
    if max_step < 1.0:
        raise ValueError("max_step must be >= 1")
    u = np.asarray(updates)
    paid = np.asarray(paid, dtype=bool)
    admitted = agreeing_admitted(u, paid, candidates)
    if not paid.any():
        return None, admitted
    norms = np.linalg.norm(u.astype(np.float64), axis=1)
    radius = float(np.median(norms[paid]))
    count = int(paid.sum() + admitted.sum())
    total = np.zeros(u.shape[1], dtype=np.float64)
    for i in np.flatnonzero(paid):  # as fedavg sums: a float64 weight times the float32 row
        total += np.float64(1.0 / count) * u[i]
    for j in np.flatnonzero(admitted):
        total += np.float64(min(1.0, radius / norms[j]) / count) * u[j]
    if max_step > 1.0:
        length = float(np.linalg.norm(total))
        if length > 0.0:
            total *= float(np.clip(radius / length, 1.0, max_step))
    return total.astype(np.float32), admitted
