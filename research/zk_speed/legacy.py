"""The round circuit as it was before issue 16's layout (``git show 599d2c0:marketplace/rule/circuit.py``),
kept verbatim for ``bench/zk.py`` (old and new side by side) and the research scripts of this folder:
both Batcher networks, the dense ``(2n+2, n)`` median-selection matrix (copied here from the old
``marketplace/rule/networks.py``), the full ``V V^T`` and its own einsum for ``q``, ``N^2`` duplicate
comparisons. Same rule, same outputs (:func:`marketplace.rule.gram.gram_rule_int`); more rows.

Its original module docstring follows.

The Gram-matrix round-scoring circuit (torch module for ezkl) and its exact quantized reference.

Each trainer slot ``i < N`` is one committed row ``x_i = (v_i[0..K-1], l_i, a_i)`` of ``K + 2``
values on the ``2**-13`` grid (see :func:`marketplace.rule.gram.committed_row`): the unit-normalised
CountSketch ``v_i``, its clipped log2-norm ``l_i`` and the presence bit ``a_i``. Slots are in
submission order (earliest first) so that the duplicate rule can keep the earliest copy.
The rule is :mod:`marketplace.rule.gram` (formulas there); the circuit computes

    a    = [x[:, K+1] > 1/2]
    G    = V V^T                         (one 2-D matmul, rescaled to scale 13)
    q    = einsum(V, V) = diag(G)
    P    = a * [q >= 1 - tol] * [q <= 1 + tol]            valid rows
    Gm   = G * (P P^T)                   (rows/columns of invalid slots zeroed)
    m_i  = median_{j in P, j != i} Gm_ij (Batcher network over the N columns of
           Gm + BIG (1 - P_j) + BIG [i == j]; count |P| - 1)
    M, lam = medians over P of m and l    (one more network, 2 columns)
    far  = m + (T - 1) < T M,  lazy = l < lam - log2(10),  boost = l > lam + B
    dist = q_i + q_j - 2 Gm_ij,  dup_i = sum_j [dist_ij <= DUP] P_j [j < i] > 1/2
    flag = a (1 - P) + P [|P| >= 3] [far + lazy + boost + dup > 1/2]
    w    = a - flag,   agree = [Gm w - q [sum w >= 2] > 0] or [m > 0],   c = w * agree * relu(Gm w)
    f    = 1/16 + relu((l - lam) - knots) @ slopes          size factor ~ 2**(l - lam)
    p    = c * f

Outputs ``flags`` (1, N) in {0, 1} and ``scores`` ``p`` (1, N) at scale 2**13. The integer
reference is :func:`marketplace.rule.gram.gram_rule_int` (the paying scorer itself).

One more input, after the N rows, is the round tag (``TAG_CHUNKS`` values, see
:mod:`marketplace.protocol.round_tag`), and one more output is that input unchanged. The tag takes
no part in the rule; it is passed through so that it is constrained: with hashed inputs the proof
exposes the tag input's Poseidon hash and the tag output as public values, both tied to the same
witness cells, so a proof verifies only with the tag it was made for. (An input that reaches no
output could be pruned by ezkl and then bind nothing.) The ezkl instances are, in this order,
``[h_0 .. h_{N-1}, h_tag | flags | scores | tag]``.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from marketplace.protocol.constants import TAG_CHUNKS
from marketplace.rule.gram import SIZE_FLOOR, SIZE_KNOTS, SIZE_SLOPES, GramConfig
from marketplace.rule.networks import batcher_layers


def median_weights(n: int) -> np.ndarray:
    """(2n+2, n) matrix W with ``t @ W`` the median-selection weights.

    ``t_m = [count >= m]`` for ``m = 0..2n+1``; with ``lo = (count-1)//2`` and ``hi = count//2``
    the weight of sorted position ``j`` is ``([j == lo] + [j == hi]) / 2``, and
    ``[j == lo] = t_{2j+1} - t_{2j+3}``, ``[j == hi] = t_{2j} - t_{2j+2}``.
    """
    w = np.zeros((2 * n + 2, n))
    for j in range(n):
        w[2 * j + 1, j] += 0.5
        w[2 * j + 3, j] -= 0.5
        w[2 * j, j] += 0.5
        w[2 * j + 2, j] -= 0.5
    return w


class GramCircuit(nn.Module):
    """Flags and scores from N committed rows of K + 2 values (Gram-matrix rule), and the round tag
    passed through. Inputs: ``row0 .. row{N-1}`` (1, K + 2) and ``tag`` (1, :attr:`tag_width`)."""

    #: Values of the tag input (and output).
    tag_width = TAG_CHUNKS

    def __init__(self, n: int, k: int, cfg: GramConfig | None = None) -> None:
        super().__init__()
        self.n, self.k = n, k
        self.cfg = cfg or GramConfig()
        self.layers = batcher_layers(n)
        self.register_buffer("ones_n", torch.ones(n, 1))
        self.register_buffer("eye", torch.eye(n))
        self.register_buffer("steps", torch.arange(2 * n + 2, dtype=torch.float32).reshape(1, -1) - 0.5)
        self.register_buffer("sel", torch.tensor(median_weights(n), dtype=torch.float32))
        self.register_buffer("knots", torch.tensor([SIZE_KNOTS], dtype=torch.float32))  # (1, 6)
        self.register_buffer("slopes", torch.tensor(SIZE_SLOPES, dtype=torch.float32).reshape(-1, 1))  # (6, 1)
        earlier = np.tril(np.ones((n, n)), -1) if self.cfg.earliest_wins else 1.0 - np.eye(n)
        self.register_buffer("earlier", torch.tensor(earlier, dtype=torch.float32))

    def _sort_cols(self, x: torch.Tensor) -> torch.Tensor:
        """Sort every column of ``x`` (n, w) ascending with the Batcher network.

        Per layer: two row gathers, one ReLU per comparator (``d = relu(a - b)``, ``lo = a - d``,
        ``hi = b + d``) and one gather that puts ``lo``/``hi`` back (fewer cells than slicing).
        """
        n = self.n
        for layer in self.layers:
            lo_idx = [i for i, _ in layer]
            hi_idx = [j for _, j in layer]
            a = x[lo_idx]
            b = x[hi_idx]
            d = torch.relu(a - b)
            back = list(range(n))
            for p, (i, j) in enumerate(layer):
                back[i] = n + p
                back[j] = n + len(layer) + p
            x = torch.cat([x, a - d, b + d], dim=0)[back]
        return x

    def forward(self, *inputs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """``inputs`` = the N rows, then the tag; returns ``(flags, scores, tag)``."""
        cfg, k = self.cfg, self.k
        rows, tag = inputs[: self.n], inputs[self.n]
        x = torch.cat(rows, dim=0)  # (n, k+2)
        v = x[:, :k]
        lg = x[:, k : k + 1]  # (n, 1)
        act = (x[:, k + 1 : k + 2] > 0.5).float()  # (n, 1)
        gram = v @ v.transpose(0, 1)  # (n, n)
        q = torch.einsum("ij,ij->i", v, v).reshape(-1, 1)  # (n, 1) squared norms = diag(G)
        valid = act * (q >= 1.0 - cfg.unit_tol).float() * (q <= 1.0 + cfg.unit_tol).float()
        pool = valid.transpose(0, 1)  # (1, n)
        gm = gram * (valid @ pool)  # invalid rows and columns zeroed
        count = pool @ self.ones_n  # (1, 1) = |P|
        # per-row median of the cosines to the other valid rows: column i of y holds G_ji
        y = gm + (1.0 - valid) * cfg.big + self.eye * cfg.big
        t_others = (count - 1.0 > self.steps).float()
        m = (t_others @ self.sel) @ self._sort_cols(y)  # (1, n)
        big2 = torch.cat([(1.0 - valid) * cfg.big, (1.0 - valid) * cfg.big_log], dim=1)  # (n, 2)
        t_all = (count > self.steps).float()
        stats = (t_all @ self.sel) @ self._sort_cols(torch.cat([m.transpose(0, 1), lg], dim=1) + big2)  # (1, 2)
        med_m = stats[:, 0:1]
        lam = stats[:, 1:2]
        mc = m.transpose(0, 1)  # (n, 1)
        far = (mc + (cfg.threshold - 1.0) < med_m * cfg.threshold).float()
        lazy = (lg < lam - cfg.lazy_log2).float()
        boost = (lg > lam + cfg.boost_log2).float()
        dist = q + q.transpose(0, 1) - (gm + gm)  # squared distances between unit vectors
        close = (dist <= cfg.dup_dist).float() * self.earlier * pool
        dup = (close @ self.ones_n > 0.5).float()  # (n, 1)
        enough = (count > cfg.min_valid - 0.5).float()
        anyf = ((far + lazy + boost + dup) > 0.5).float()
        flags = act - valid + valid * anyf * enough
        w = act - flags  # inliers
        total = gm @ w  # (n, 1) = |I| <v_i, g> with g the mean inlier unit vector
        several = (w.transpose(0, 1) @ self.ones_n > 1.5).float()  # (1, 1) = [|I| >= 2]
        # agrees with the other inliers on net (leave-one-out), or with most of the others (median cosine)
        agree = (((total - q * several > 0.0).float() + (mc > 0.0).float()) > 0.5).float()
        c = torch.relu(total) * w * agree
        size = torch.relu(lg - lam - self.knots) @ self.slopes + SIZE_FLOOR  # (n, 1) ~ 2**(l_i - lam)
        p = c * size
        return flags.reshape(1, -1), p.reshape(1, -1), tag  # the tag unchanged: see the module doc
