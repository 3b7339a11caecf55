"""The Gram-matrix round-scoring circuit (torch module for ezkl), its layout per size, and its exact
quantized reference.

Each trainer slot ``i < N`` is one committed row ``x_i = (v_i[0..K-1], l_i, a_i)`` of ``K + 2``
values on the ``2**-13`` grid (see :func:`marketplace.rule.gram.committed_row`): the unit-normalised
CountSketch ``v_i``, its clipped log2-norm ``l_i`` and the presence bit ``a_i``. Slots are in
submission order (earliest first) so that the duplicate rule can keep the earliest copy.
The rule is :mod:`marketplace.rule.gram` (formulas there); the circuit computes (the specification;
the layout below computes exactly these values)

    a    = [x[:, K+1] > 1/2]
    G    = V V^T                         (rescaled to scale 13)
    q    = diag(G)
    P    = a * [q >= 1 - tol] * [q <= 1 + tol]            valid rows
    Gm   = G * (P P^T)                   (rows/columns of invalid slots zeroed)
    m_i  = median_{j in P, j != i} Gm_ij (sort column i of Gm + BIG (1 - P_j) + BIG [i == j],
           select with the count |P| - 1)
    M, lam = medians over P of m and l    (sort 2 columns padded with BIG (1 - P), count |P|)
    far  = m + (T - 1) < T M,  lazy = l < lam - log2(10),  boost = l > lam + B
    dist = q_i + q_j - 2 Gm_ij,  dup_i = sum_j [dist_ij <= DUP] P_j E_ij > 1/2
           (E_ij = [j < i] if earliest_wins, else [j != i])
    flag = a (1 - P) + P [|P| >= 3] [far + lazy + boost + dup > 1/2]
    w    = a - flag,   agree = [Gm w - q [sum w >= 2] > 0] or [m > 0],   c = w * agree * relu(Gm w)
    f    = 1/16 + relu((l - lam) - knots) @ slopes          size factor ~ 2**(l - lam)
    p    = c * f

A median of ``c`` values is ``rescale(s[lo]/2 + s[hi]/2)`` of the ascending sorted column ``s`` with
``lo = (c-1)//2``, ``hi = c//2`` (:func:`marketplace.rule.networks.median_weights`); 0 if ``c <= 0``.

Outputs ``flags`` (1, N) in {0, 1} and ``scores`` ``p`` (1, N) at scale 2**13. The integer
reference is :func:`marketplace.rule.gram.gram_rule_int` (the paying scorer itself); the witness
equals it bit for bit (``tests/test_zk_gram.py``, a property test over adversarial rounds per size).

Layout (what ezkl lays out; each point changes rows, never a value):

- sorts: ``sort="batcher"`` is Batcher's odd-even merge network (one ReLU per comparator, no extra
  columns); ``sort="topk"`` is ezkl's native sort (ONNX ``TopK``, k = n, ascending), a
  prover-supplied column pinned by a shuffle argument (a permutation of the input) and ``n - 1``
  neighbour comparisons (ascending). Why no value changes: the ascending sort of a multiset is
  unique, ties included, so both give the same column. TopK costs ``n - 1`` comparisons per
  column instead of ``O(n log^2 n)`` comparators, plus shuffle columns (about 21 % more proving
  time at a fixed logrows), so it pays from N = 32 on (:data:`CIRCUIT_LAYOUTS`).
- ``G`` from blocks (``leaf``): ``G`` over rows ``[lo, hi)`` is the two diagonal blocks
  (recursively) and one off-diagonal product ``V_hi V_lo^T``, whose transpose is a gather; blocks
  of at most ``leaf`` rows are one product. Why no value changes: every entry is the same
  rescaled dot product ``rescale(sum_k v_ik v_jk)`` as in ``V V^T`` (ezkl checks each product by
  Freivalds' argument and rescales each entry), ``G`` is symmetric by construction, and only
  ``N (N + leaf) / 2`` entries (N a power of two; 2,112 of 4,096 at N = 64) are rescaled instead
  of ``N^2`` (about 23 rows each).
- ``q = diag(G)`` by a gather. Why: ``G_ii = rescale(sum_k v_ik^2)`` is the squared norm.
- the mask as two broadcast products ``G * P * P^T``. Why: a 0/1 factor is exact; no outer
  product is needed.
- paddings as ``BIG - BIG P`` (scale 13, exact). Why: equal to ``BIG (1 - P)``, whose ``1 -``
  lifted the mask to scale 13 and forced a rescale of N values.
- median selection weights from two gathers and adds (``(s_j - s_{j+1}) / 2``,
  :func:`~marketplace.rule.networks.median_weights`) instead of a product with a dense
  ``(2n+2, n)`` constant. Why: the same 0, 1/2 or 1 per position, exact at scale 13.
- the count comparisons ``[count >= m]`` only for ``m`` up to the number of sorted positions (not
  up to ``2n + 1``), the others a scale-0 zero. Why: a count never exceeds the number of sorted
  positions, so the others are 0.
- TopK layout only: each per-row median sorts the ``N - 1`` off-diagonal entries of its column.
  Why: the diagonal was padded with BIG to the top, and the selection reaches position
  ``(count - 1) // 2 <= N - 2`` at most. (The Batcher network needs a power of two and keeps it.)
- duplicates on the ``N (N - 1) / 2`` pairs ``j < i`` only, gathered into an (N, N) matrix of
  scale-0 values (both triangles when ``earliest_wins`` is off). Why: ``dist`` is symmetric, so
  the pair ``(j, i)`` is the pair ``(i, j)``; the ``E_ij`` mask zeroed the rest; a scale-0 zero
  pads the gather (a float 0 would lift the matrix to scale 13 and its row sums would be
  rescaled).
- no ``P_j`` factor in the duplicate test. Why: ``Gm_ij = 0`` for an invalid ``j``, so
  ``dist_ij = q_i + q_j >= q_i >= 1 - tol > DUP`` for every valid ``i``, and ``dup_i`` only counts
  for valid ``i``.

One more input, after the N rows, is the round tag (``TAG_CHUNKS`` values, see
:mod:`marketplace.protocol.round_tag`), and one more output is that input unchanged. The tag takes
no part in the rule; it is passed through so that it is constrained: with hashed inputs the proof
exposes the tag input's Poseidon hash and the tag output as public values, both tied to the same
witness cells, so a proof verifies only with the tag it was made for. (An input that reaches no
output could be pruned by ezkl and then bind nothing.) The ezkl instances are, in this order,
``[h_0 .. h_{N-1}, h_tag | flags | scores | tag]``; they do not depend on the layout.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from marketplace.protocol.constants import TAG_CHUNKS
from marketplace.rule.gram import SIZE_FLOOR, SIZE_KNOTS, SIZE_SLOPES, GramConfig
from marketplace.rule.networks import batcher_layers, median_gathers, median_weights

Sort = Literal["batcher", "topk"]
SORTS: tuple[Sort, ...] = ("batcher", "topk")


@dataclass(frozen=True)
class CircuitLayout:
    """How the circuit of one size is laid out and proved (none of it changes a value)."""

    k: int
    """Sketch width K offered at this size."""
    sort: Sort
    """How medians are sorted (:class:`GramCircuit`)."""
    cols: int
    """ezkl's inner columns (``run_args.num_inner_cols``): more columns, fewer rows, more time per row."""


#: The offered circuits: trainer slots N -> layout. Batcher sorts while the circuit is bound by the
#: Poseidon hashing of its inputs (TopK's shuffle columns would only add time), TopK from 32 on; a
#: third inner column at 64 keeps it at logrows 17 (measured: ``bench/zk.py``,
#: ``docs/design/proving-speed.md``).
CIRCUIT_LAYOUTS: dict[int, CircuitLayout] = {
    4: CircuitLayout(32, "batcher", 2),
    8: CircuitLayout(64, "batcher", 2),
    16: CircuitLayout(32, "batcher", 2),
    32: CircuitLayout(32, "topk", 2),
    64: CircuitLayout(32, "topk", 3),
}


def layout_for(n: int) -> CircuitLayout:
    """The layout of the smallest offered circuit of at least ``n`` slots (ValueError beyond the largest)."""
    for size, layout in sorted(CIRCUIT_LAYOUTS.items()):
        if n <= size:
            return layout
    raise ValueError(f"no circuit for {n} trainers (at most {max(CIRCUIT_LAYOUTS)})")


def _lower_pairs(n: int) -> list[tuple[int, int]]:
    """The pairs ``(i, j)`` with ``j < i``, row-major."""
    return [(i, j) for i in range(n) for j in range(i)]


def _block_gram(n: int, leaf: int) -> tuple[list[tuple[list[int], list[int]]], list[int]]:
    """(products, assemble): the row and column indices of each block product of ``G``, and for each
    entry ``(i, j)`` of ``G`` (row-major) its index in the concatenation of the flattened products."""
    products: list[tuple[list[int], list[int]]] = []
    where: dict[tuple[int, int], int] = {}
    offset = 0

    def build(lo: int, hi: int) -> None:
        nonlocal offset
        if hi - lo <= leaf:
            products.append((list(range(lo, hi)), list(range(lo, hi))))
            for a, i in enumerate(range(lo, hi)):
                for b, j in enumerate(range(lo, hi)):
                    where[(i, j)] = offset + a * (hi - lo) + b
            offset += (hi - lo) ** 2
            return
        mid = (lo + hi) // 2
        build(lo, mid)
        build(mid, hi)
        products.append((list(range(mid, hi)), list(range(lo, mid))))
        for a, i in enumerate(range(mid, hi)):
            for b, j in enumerate(range(lo, mid)):
                where[(i, j)] = where[(j, i)] = offset + a * (mid - lo) + b
        offset += (hi - mid) * (mid - lo)

    build(0, n)
    return products, [where[(i, j)] for i in range(n) for j in range(n)]


class GramCircuit(nn.Module):
    """Flags and scores from N committed rows of K + 2 values (Gram-matrix rule), and the round tag
    passed through. Inputs: ``row0 .. row{N-1}`` (1, K + 2) and ``tag`` (1, :attr:`tag_width`).

    ``sort``: ``"batcher"`` (N a power of two) or ``"topk"``; ``leaf``: the largest diagonal block of
    ``G`` computed as one product (module doc). Neither changes an output."""

    #: Values of the tag input (and output).
    tag_width = TAG_CHUNKS

    def __init__(self, n: int, k: int, cfg: GramConfig | None = None, *, sort: Sort = "batcher", leaf: int = 2) -> None:
        super().__init__()
        if n < 2:
            raise ValueError(f"a round circuit has at least 2 slots, got {n}")
        if sort not in SORTS:
            raise ValueError(f"sort must be one of {SORTS}, got {sort!r}")
        if leaf < 1:
            raise ValueError(f"leaf must be at least 1, got {leaf}")
        self.n, self.k, self.sort, self.leaf = n, k, sort, leaf
        self.cfg = cfg or GramConfig()
        self.layers = batcher_layers(n) if sort == "batcher" else ()
        self.register_buffer("ones_n", torch.ones(n, 1))
        self.register_buffer("knots", torch.tensor([SIZE_KNOTS], dtype=torch.float32))  # (1, 6)
        self.register_buffer("slopes", torch.tensor(SIZE_SLOPES, dtype=torch.float32).reshape(-1, 1))  # (6, 1)
        self.products, self.assemble = _block_gram(n, leaf)
        self.diag = [i * n + i for i in range(n)]
        # per-row medians: positions sorted per column (the off-diagonal n - 1 with TopK, all n with Batcher)
        self.row_positions = n - 1 if sort == "topk" else n
        self.register_buffer(
            "steps_rows", torch.arange(self.row_positions + 1, dtype=torch.float32).reshape(1, -1) - 0.5
        )
        self.register_buffer("steps_n", torch.arange(n + 1, dtype=torch.float32).reshape(1, -1) - 0.5)
        self.gathers_rows = median_gathers(self.row_positions)
        self.gathers_n = median_gathers(n)
        if sort == "batcher":
            self.register_buffer("diag_big", torch.eye(n) * self.cfg.big)
        else:  # column i of the (n-1, n) off-diagonal matrix: G_ji for j != i, j ascending
            self.off = [(j + (j >= i)) * n + i for j in range(n - 1) for i in range(n)]
            self.off_row = [j + (j >= i) for j in range(n - 1) for i in range(n)]
        pairs = _lower_pairs(n)
        self.pi = [i for i, _ in pairs]
        self.pj = [j for _, j in pairs]
        self.flat = [i * n + j for i, j in pairs]
        # (n, n) gather of the pairs' values, index len(pairs) being a scale-0 zero: (i, j < i) -> its
        # pair, and (j, i) too when every copy of a group is flagged (dist is symmetric)
        back = [[len(pairs)] * n for _ in range(n)]
        for p, (i, j) in enumerate(pairs):
            back[i][j] = p
            if not self.cfg.earliest_wins:
                back[j][i] = p
        self.back = [b for row in back for b in row]

    def _sort_cols(self, x: torch.Tensor) -> torch.Tensor:
        """Every column of ``x`` (r, w) sorted ascending: ezkl's TopK, or the Batcher network (r = n).

        Batcher, per layer: two row gathers, one ReLU per comparator (``d = relu(a - b)``,
        ``lo = a - d``, ``hi = b + d``) and one gather that puts ``lo``/``hi`` back (fewer cells than
        slicing)."""
        if self.sort == "topk":
            return torch.topk(x, x.shape[0], dim=0, largest=False, sorted=True).values
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

    def _gram(self, v: torch.Tensor) -> torch.Tensor:
        """``G = V V^T`` (n, n), rescaled, from the block products (module doc)."""
        parts = [(v[rows] @ v[cols].transpose(0, 1)).reshape(1, -1) for rows, cols in self.products]
        return torch.cat(parts, dim=1)[:, self.assemble].reshape(self.n, self.n)

    def forward(self, *inputs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """``inputs`` = the N rows, then the tag; returns ``(flags, scores, tag)``."""
        cfg, k, n = self.cfg, self.k, self.n
        rows, tag = inputs[:n], inputs[n]
        x = torch.cat(rows, dim=0)  # (n, k+2)
        v = x[:, :k]
        lg = x[:, k : k + 1]  # (n, 1)
        act = (x[:, k + 1 : k + 2] > 0.5).float()  # (n, 1)
        gram = self._gram(v)
        q = gram.reshape(1, -1)[:, self.diag].reshape(-1, 1)  # (n, 1) squared norms
        valid = act * (q >= 1.0 - cfg.unit_tol).float() * (q <= 1.0 + cfg.unit_tol).float()
        pool = valid.transpose(0, 1)  # (1, n)
        gm = gram * valid * pool  # invalid rows and columns zeroed
        count = pool @ self.ones_n  # (1, 1) = |P|, scale 0
        zero = (count < -0.5).float()  # (1, 1): 0 at scale 0
        pad = cfg.big - valid * cfg.big  # (n, 1) = BIG (1 - P), scale 13
        # per-row median of the cosines to the other valid rows: column i of y holds G_ji
        if self.sort == "batcher":
            y = gm + pad + self.diag_big
        else:
            y = gm.reshape(1, -1)[:, self.off].reshape(n - 1, n) + pad.reshape(1, -1)[:, self.off_row].reshape(n - 1, n)
        t_others = (count - 1.0 > self.steps_rows).float()
        m = median_weights(t_others, zero, self.gathers_rows) @ self._sort_cols(y)  # (1, n)
        big2 = torch.cat([pad, cfg.big_log - valid * cfg.big_log], dim=1)  # (n, 2)
        sorted_s = self._sort_cols(torch.cat([m.transpose(0, 1), lg], dim=1) + big2)
        stats = median_weights((count > self.steps_n).float(), zero, self.gathers_n) @ sorted_s  # (1, 2)
        med_m = stats[:, 0:1]
        lam = stats[:, 1:2]
        mc = m.transpose(0, 1)  # (n, 1)
        far = (mc + (cfg.threshold - 1.0) < med_m * cfg.threshold).float()
        lazy = (lg < lam - cfg.lazy_log2).float()
        boost = (lg > lam + cfg.boost_log2).float()
        qr = q.reshape(1, -1)
        gp = gm.reshape(1, -1)[:, self.flat]  # (1, pairs): Gm_ij, j < i
        dist = qr[:, self.pi] + qr[:, self.pj] - (gp + gp)  # squared distances between unit vectors
        close = (dist <= cfg.dup_dist).float()  # (1, pairs), scale 0; no P_j factor: see the module doc
        dup = (torch.cat([close, zero], dim=1)[:, self.back].reshape(n, n) @ self.ones_n > 0.5).float()  # (n, 1)
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
