"""The round-scoring circuit (a torch module for ezkl) and its exact quantized reference.

Each trainer ``i < N`` commits to one row ``x_i = (s_i[0..K-1], presence_i)`` of ``K + 1``
values, quantised at scale ``2**SCALE`` (``ezkl.float_to_felt(v, SCALE)``); ``s_i`` is its
normalised sketch and ``presence_i = 1``. A trainer that did not submit is the all-zero row.
The circuit (all statistics over the active rows ``A``; see ``zk/NOTES.md``):

    a_i   = [presence_i > 1/2]
    c_i   = clip(s_i, -C, C) * a_i                       (C = CLIP)
    m     = coordinate-wise median of {c_i : i in A}     (inactive rows sorted to the top)
    d_i   = ||c_i - m||^2
    r     = median of {d_j : j in A}
    n_i   = ||c_i||^2
    q     = median of {n_j : j in A}
    far_i = d_i > T^2 r,  lazy_i = n_i < L^2 q,
    dup_i = exists j in A, j != i, ||c_i - c_j||^2 <= K * DUP**2      (DUP = 1/32)
    opp_i = <c_i, m> < 0                                  (rounded at scale 13)
    flag_i = a_i and |A| >= 3 and (far_i or lazy_i or dup_i or opp_i)
    w_i   = a_i and not flag_i                            (inliers)
    G     = sum_i w_i c_i                                 (|I| times the inlier mean)
    p_i   = w_i * max(0, <c_i, G / N>)

Outputs: ``flags`` (N, 0/1) and ``scores`` ``p`` (N, scale 2**SCALE); payouts are
``p_i / sum_j p_j``, so the factor ``|I| / N`` relative to ``max(0, <s_i, g>)`` cancels.

:func:`reference_int` recomputes both outputs from the quantised rows with integer
arithmetic that mirrors ezkl's fixed-point ops (rescaling rounds half away from zero).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch
from torch import nn

from marketplace.protocol.commitment import quantize, snap
from marketplace.protocol.constants import SCALE
from marketplace.rule.networks import batcher_layers
from research.zk_speed.legacy import median_weights  # the dense (2n+2, n) form the old circuit used


@dataclass(frozen=True)
class CircuitConfig:
    """Shape and rule constants of one circuit (all of them are baked into the verifying key)."""

    n: int = 16
    k: int = 64
    threshold: float = 2.0
    """far_i = d_i > threshold**2 * r  (squared form of ||s_i - m|| > threshold * median)."""
    lazy_ratio: float = 0.1
    """lazy_i = n_i < lazy_ratio**2 * q  (norm below lazy_ratio times the median norm)."""
    dup_coord: float = 2.0**-5
    """dup if ||c_i - c_j||^2 <= K * dup_coord**2: RMS coordinate difference below 1/32."""
    clip: float = 4.0
    """Every sketch entry is clipped to [-clip, clip] (honest entries have RMS about 1)."""
    min_active: int = 3

    @property
    def dup_abs(self) -> float:
        """Absolute squared-distance threshold of the duplicate rule."""
        return self.k * self.dup_coord**2

    @property
    def big_coord(self) -> float:
        """Value of inactive rows in the coordinate sort (above every clipped entry)."""
        return 2.0 * self.clip

    @property
    def big_stat(self) -> float:
        """Value of inactive rows in the sort of (d, nrm): above K * (2C)^2 >= every d and nrm."""
        return 2.0 * self.k * (2.0 * self.clip) ** 2


@lru_cache(maxsize=8)
class ScoringCircuit(nn.Module):
    """Outlier flags and contribution scores from N committed rows of K + 1 values."""

    def __init__(self, cfg: CircuitConfig) -> None:
        super().__init__()
        self.cfg = cfg
        n = cfg.n
        self.layers = batcher_layers(n)
        self.probe = ""
        self.register_buffer("ones_n", torch.ones(1, n))
        self.register_buffer("steps", torch.arange(2 * n + 2, dtype=torch.float32).reshape(1, -1) - 0.5)
        self.register_buffer("sel", torch.tensor(median_weights(n), dtype=torch.float32))
        self.register_buffer("offdiag", 1.0 - torch.eye(n))

    def _sort_rows(self, x: torch.Tensor) -> torch.Tensor:
        """Sort every column of ``x`` (n, w) ascending with the Batcher network."""
        rows = [x[i : i + 1] for i in range(self.cfg.n)]
        for layer in self.layers:
            lo_idx = [a for a, _ in layer]
            hi_idx = [b for _, b in layer]
            a = torch.cat([rows[i] for i in lo_idx], dim=0)
            b = torch.cat([rows[j] for j in hi_idx], dim=0)
            d = torch.relu(a - b)
            lo = a - d
            hi = b + d
            for p, (i, j) in enumerate(layer):
                rows[i] = lo[p : p + 1]
                rows[j] = hi[p : p + 1]
        return torch.cat(rows, dim=0)

    def _masked_median(self, x: torch.Tensor, inactive_big: torch.Tensor, sel_w: torch.Tensor) -> torch.Tensor:
        """Column medians of the active rows of ``x`` (n, w): inactive rows are pushed to the top."""
        return sel_w @ self._sort_rows(x + inactive_big)

    def forward(self, *rows: torch.Tensor) -> tuple[torch.Tensor, ...]:
        cfg = self.cfg
        k = cfg.k
        x = torch.cat(rows, dim=0)  # (n, k+1)
        s = x[:, :k]
        act = (x[:, k : k + 1] > 0.5).float()  # (n, 1)
        inact = 1.0 - act
        # clip to [-C, C] with two ReLUs, then zero inactive rows
        c = (torch.relu(s + cfg.clip) - torch.relu(s - cfg.clip) - cfg.clip) * act
        count = self.ones_n @ act  # (1, 1)
        t = (count > self.steps).float()  # t_m = [count >= m], count integral
        sel_w = t @ self.sel  # (1, n) median-selection weights
        m = self._masked_median(c, inact * cfg.big_coord, sel_w)  # (1, k)
        diff = c - m
        d = torch.einsum("ij,ij->i", diff, diff).reshape(-1, 1)  # (n, 1) squared distance to m
        nrm = torch.einsum("ij,ij->i", c, c).reshape(-1, 1)  # (n, 1) squared norm
        stats = self._masked_median(torch.cat([d, nrm], dim=1), inact * cfg.big_stat, sel_w)  # (1, 2)
        r = stats[:, 0:1]
        q = stats[:, 1:2]
        far = (d > r * cfg.threshold**2).float()
        lazy = (nrm < q * cfg.lazy_ratio**2).float()
        gram = c @ c.transpose(0, 1)  # (n, n)
        dist = nrm + nrm.transpose(0, 1) - (gram + gram)  # squared pairwise distances
        close = (dist <= cfg.dup_abs).float() * self.offdiag * act.transpose(0, 1)
        dup = (close @ self.ones_n.transpose(0, 1) > 0.5).float()  # (n, 1)
        opp = ((c @ m.transpose(0, 1)) < 0.0).float()  # (n, 1) points against the median
        enough = (count > cfg.min_active - 0.5).float()
        flags = ((far + lazy + dup + opp) > 0.5).float() * act * enough
        w = act - flags  # inliers (flags imply active)
        g = (w.transpose(0, 1) @ c) * (1.0 / cfg.n)  # (1, k): |I|/n times the inlier mean
        p = torch.relu(c @ g.transpose(0, 1)) * w  # (n, 1)
        if self.probe:
            return locals()[self.probe].reshape(1, -1)
        return flags.reshape(1, -1), p.reshape(1, -1)


# --------------------------------------------------------------------------- reference


def _rescale(v: np.ndarray, shift: int = SCALE) -> np.ndarray:
    """Divide integers by ``2**shift``, rounding half away from zero (ezkl's rescale)."""
    v = np.asarray(v, dtype=np.int64)
    d = 1 << shift
    return np.sign(v) * ((np.abs(v) + d // 2) // d)


def _const(value: float) -> int:
    """A model constant as ezkl stores it: rounded at ``param_scale``."""
    return int(quantize(np.array([value]))[0])


def _masked_median_int(x: np.ndarray, inact_big: np.ndarray, sel_w: np.ndarray) -> np.ndarray:
    srt = np.sort(x + inact_big, axis=0)
    return _rescale(sel_w @ srt)


def reference_int(
    rows_q: np.ndarray, cfg: CircuitConfig, probes: dict[str, np.ndarray] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Flags (0/1) and integer scores (scale ``2**SCALE``) exactly as the circuit computes them.

    ``rows_q`` are the quantised committed rows (n, k+1) (see :func:`quantize`). Every product of
    two scale-13 values is rescaled to scale 13 by :func:`_rescale`, as ezkl does; comparisons
    and ReLUs are exact on integers. ``probes`` (optional) receives the intermediates.
    """
    x = np.asarray(rows_q, dtype=np.int64)
    n, k = cfg.n, cfg.k
    one = 1 << SCALE
    s = x[:, :k]
    act = (x[:, k : k + 1] > one // 2).astype(np.int64)
    inact = 1 - act
    clip = _const(cfg.clip)
    c = (np.maximum(s + clip, 0) - np.maximum(s - clip, 0) - clip) * act
    count = int(act.sum())
    t = (count * one > quantize(np.arange(2 * n + 2) - 0.5)).astype(np.int64)
    sel_w = t @ quantize(median_weights(n))  # (n,), scale 13
    m = _masked_median_int(c, inact * _const(cfg.big_coord), sel_w)
    diff = c - m
    d = _rescale(np.einsum("ij,ij->i", diff, diff))
    nrm = _rescale(np.einsum("ij,ij->i", c, c))
    stats = _masked_median_int(np.stack([d, nrm], axis=1), inact * _const(cfg.big_stat), sel_w)
    r, q = int(stats[0]), int(stats[1])
    far = d > _rescale(r * _const(cfg.threshold**2))
    lazy = nrm < _rescale(q * _const(cfg.lazy_ratio**2))
    gram = _rescale(c @ c.T)
    dist = nrm[:, None] + nrm[None, :] - 2 * gram
    a = act[:, 0].astype(bool)
    close = (dist <= _const(cfg.dup_abs)) & ~np.eye(n, dtype=bool) & a[None, :]
    dup = close.any(axis=1)
    opp = _rescale(c @ m) < 0
    enough = count >= cfg.min_active
    flags = (far | lazy | dup | opp) & a & enough
    w = (a & ~flags).astype(np.int64)
    # ezkl multiplies by the power of two 1/n by shifting the scale (g is exact at scale 13 + log2 n)
    g = w @ c
    p = np.maximum(_rescale(c @ g, SCALE + n.bit_length() - 1), 0) * w
    if probes is not None:
        probes.update(c=c, m=m, d=d, nrm=nrm, stats=stats, gram=gram, dist=dist, g=g, p=p, flags=flags)
    return flags.astype(np.int64), p.astype(np.int64)


def make_rows(sketches: np.ndarray, active: np.ndarray) -> np.ndarray:
    """The (n, k+1) float rows the trainers commit to: ``(snap(s_i), 1)``, or zeros when inactive."""
    s = snap(np.asarray(sketches, dtype=np.float64))
    a = np.asarray(active, dtype=bool).reshape(-1, 1)
    return np.where(a, np.concatenate([s, np.ones((s.shape[0], 1))], axis=1), 0.0)
