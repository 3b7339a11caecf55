"""Weighted FedAvg of the inlier updates."""

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
