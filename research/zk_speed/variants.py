"""Variants of the pre-issue-16 round circuit (:class:`research.zk_speed.legacy.GramCircuit`) for row
counting; the layout they led to is the production circuit, :class:`marketplace.rule.circuit.GramCircuit`.

- :class:`GramAblation`: the old circuit with named components replaced by stand-ins of the same
  shape (an identity, a constant), so that ``rows(full) - rows(without c)`` is what ``c`` costs.
  Nothing it computes is meant to be right; only its layout is measured.
- :class:`GramTopK`: the old circuit with both Batcher networks replaced by ezkl's native sort
  (ONNX ``TopK`` with ``k = n``, ascending): ezkl assigns the sorted column as a witness and
  constrains it with a shuffle (permutation) argument plus ``n - 1`` comparisons of neighbours, so
  its outputs are the Batcher network's, value for value, and the integer reference is unchanged.
- :class:`GramFast`, :class:`GramLean`: successive layouts of the same rule with fewer rows (each
  class says what it changes); every one gives the old circuit's outputs bit for bit
  (``python -m research.zk_speed.exact``). The next step, ``GramTri`` of
  ``docs/design/proving-speed.md`` (``GramLean`` with the Gram matrix from blocks), is now the
  production circuit: :class:`marketplace.rule.circuit.GramCircuit` with ``sort="topk"`` (or
  ``"batcher"``, the Batcher networks with all the other cuts).

The components (names of :data:`COMPONENTS`) follow the old circuit's ``forward``.
"""

from __future__ import annotations

import torch

from marketplace.rule.gram import SIZE_FLOOR, GramConfig
from research.zk_speed.legacy import GramCircuit

#: What :class:`GramAblation` can drop, and its stand-in.
COMPONENTS: dict[str, str] = {
    "valid": "P = a (no unit-norm comparisons)",
    "row_sort": "per-row median: the Batcher network over N columns -> identity",
    "row_select": "per-row median: the selection (t @ W) @ sorted -> first sorted row",
    "stat_sort": "M, lam: the 2-column Batcher network -> identity",
    "stat_select": "M, lam: the selection -> first sorted row",
    "gates": "far, lazy, boost -> 0",
    "dup": "dup (N^2 distances and comparisons) -> 0",
    "agree": "agree gate -> 1",
    "size": "size factor -> 1",
}


class GramAblation(GramCircuit):
    """:class:`GramCircuit` with the components in ``drop`` (keys of :data:`COMPONENTS`) replaced by
    their stand-ins; ``topk`` sorts with ezkl's TopK instead of the Batcher network."""

    def __init__(
        self, n: int, k: int, cfg: GramConfig | None = None, drop: frozenset[str] = frozenset(), topk: bool = False
    ) -> None:
        super().__init__(n, k, cfg)
        unknown = set(drop) - set(COMPONENTS)
        if unknown:
            raise ValueError(f"unknown components {sorted(unknown)}")
        self.drop = frozenset(drop)
        self.topk = topk

    def _sort(self, x: torch.Tensor, name: str) -> torch.Tensor:
        if name in self.drop:
            return x
        if self.topk:
            return torch.topk(x, x.shape[0], dim=0, largest=False, sorted=True).values
        return self._sort_cols(x)

    def forward(self, *inputs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        cfg, k, d = self.cfg, self.k, self.drop
        rows, tag = inputs[: self.n], inputs[self.n]
        x = torch.cat(rows, dim=0)
        v = x[:, :k]
        lg = x[:, k : k + 1]
        act = (x[:, k + 1 : k + 2] > 0.5).float()
        gram = v @ v.transpose(0, 1)
        q = torch.einsum("ij,ij->i", v, v).reshape(-1, 1)
        unit = (q >= 1.0 - cfg.unit_tol).float() * (q <= 1.0 + cfg.unit_tol).float()
        valid = act if "valid" in d else act * unit
        pool = valid.transpose(0, 1)
        gm = gram * (valid @ pool)
        count = pool @ self.ones_n
        y = gm + (1.0 - valid) * cfg.big + self.eye * cfg.big
        sorted_y = self._sort(y, "row_sort")
        if "row_select" in d:
            m = sorted_y[0:1]
        else:
            t_others = (count - 1.0 > self.steps).float()
            m = (t_others @ self.sel) @ sorted_y
        big2 = torch.cat([(1.0 - valid) * cfg.big, (1.0 - valid) * cfg.big_log], dim=1)
        sorted_s = self._sort(torch.cat([m.transpose(0, 1), lg], dim=1) + big2, "stat_sort")
        if "stat_select" in d:
            stats = sorted_s[0:1]
        else:
            t_all = (count > self.steps).float()
            stats = (t_all @ self.sel) @ sorted_s
        med_m = stats[:, 0:1]
        lam = stats[:, 1:2]
        mc = m.transpose(0, 1)
        zero = torch.zeros_like(valid)
        if "gates" in d:
            far = lazy = boost = zero
        else:
            far = (mc + (cfg.threshold - 1.0) < med_m * cfg.threshold).float()
            lazy = (lg < lam - cfg.lazy_log2).float()
            boost = (lg > lam + cfg.boost_log2).float()
        if "dup" in d:
            dup = zero
        else:
            dist = q + q.transpose(0, 1) - (gm + gm)
            close = (dist <= cfg.dup_dist).float() * self.earlier * pool
            dup = (close @ self.ones_n > 0.5).float()
        enough = (count > cfg.min_valid - 0.5).float()
        anyf = ((far + lazy + boost + dup) > 0.5).float()
        flags = act - valid + valid * anyf * enough
        w = act - flags
        total = gm @ w
        if "agree" in d:
            c = torch.relu(total) * w
        else:
            several = (w.transpose(0, 1) @ self.ones_n > 1.5).float()
            agree = (((total - q * several > 0.0).float() + (mc > 0.0).float()) > 0.5).float()
            c = torch.relu(total) * w * agree
        if "size" in d:
            p = c
        else:
            size = torch.relu(lg - lam - self.knots) @ self.slopes + SIZE_FLOOR
            p = c * size
        return flags.reshape(1, -1), p.reshape(1, -1), tag


class GramTopK(GramAblation):
    """The live rule with ezkl's native sort (TopK) in place of both Batcher networks: same outputs,
    bit for bit (a sort is a sort), so :func:`marketplace.rule.gram.gram_rule_int` is its reference."""

    def __init__(self, n: int, k: int, cfg: GramConfig | None = None) -> None:
        super().__init__(n, k, cfg, topk=True)


def _lower_pairs(n: int) -> tuple[list[int], list[int], list[int]]:
    """(row i, column j, flat index i * n + j) of the pairs ``j < i``, row-major."""
    rows, cols = zip(*[(i, j) for i in range(n) for j in range(i)], strict=True) if n > 1 else ((), ())
    return list(rows), list(cols), [i * n + j for i, j in zip(rows, cols, strict=True)]


class GramFast(GramCircuit):
    """The live rule, value for value, laid out with fewer rows (same outputs as
    :func:`marketplace.rule.gram.gram_rule_int`; ``earliest_wins`` only):

    - sorts: ezkl's TopK (a prover-supplied sorted column checked by a shuffle argument and
      ``n - 1`` neighbour comparisons) instead of the Batcher networks;
    - median selection weights from gathers (``w_j = (s_j - s_{j+1}) / 2`` with
      ``s_j = t_{2j} + t_{2j+1}``) instead of the dense ``t @ W`` product with a (2n+2, n) constant;
    - duplicates: distances and comparisons on the ``n (n - 1) / 2`` pairs ``j < i`` only (the
      ``earlier`` mask zeroed the others), gathered back into an (n, n) matrix with zeros.
    """

    def __init__(self, n: int, k: int, cfg: GramConfig | None = None) -> None:
        super().__init__(n, k, cfg)
        if not self.cfg.earliest_wins:
            raise ValueError("GramFast lays out the earliest-wins duplicate rule only")
        pi, pj, flat = _lower_pairs(n)
        self.pi, self.pj, self.flat = pi, pj, flat
        npairs = len(flat)
        # (n, n) gather of the pair values with a zero appended at index npairs: entry (i, j<i) -> its pair
        back = [[npairs] * n for _ in range(n)]
        for p, (i, j) in enumerate(zip(pi, pj, strict=True)):
            back[i][j] = p
        self.back = [b for row in back for b in row]
        self.even = list(range(0, 2 * n + 2, 2))
        self.odd = list(range(1, 2 * n + 2, 2))

    def _sort_cols(self, x: torch.Tensor) -> torch.Tensor:
        return torch.topk(x, x.shape[0], dim=0, largest=False, sorted=True).values

    def _weights(self, t: torch.Tensor) -> torch.Tensor:
        """``t @ median_weights(n)`` for ``t`` (1, 2n+2) of 0/1, as gathers and adds."""
        s = t[:, self.even] + t[:, self.odd]  # (1, n + 1)
        return (s[:, : self.n] - s[:, 1:]) * 0.5

    def forward(self, *inputs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        cfg, k, n = self.cfg, self.k, self.n
        rows, tag = inputs[:n], inputs[n]
        x = torch.cat(rows, dim=0)
        v = x[:, :k]
        lg = x[:, k : k + 1]
        act = (x[:, k + 1 : k + 2] > 0.5).float()
        gram = v @ v.transpose(0, 1)
        q = torch.einsum("ij,ij->i", v, v).reshape(-1, 1)
        valid = act * (q >= 1.0 - cfg.unit_tol).float() * (q <= 1.0 + cfg.unit_tol).float()
        pool = valid.transpose(0, 1)
        gm = gram * (valid @ pool)
        count = pool @ self.ones_n
        y = gm + (1.0 - valid) * cfg.big + self.eye * cfg.big
        m = self._weights((count - 1.0 > self.steps).float()) @ self._sort_cols(y)
        big2 = torch.cat([(1.0 - valid) * cfg.big, (1.0 - valid) * cfg.big_log], dim=1)
        sorted_s = self._sort_cols(torch.cat([m.transpose(0, 1), lg], dim=1) + big2)
        stats = self._weights((count > self.steps).float()) @ sorted_s
        med_m = stats[:, 0:1]
        lam = stats[:, 1:2]
        mc = m.transpose(0, 1)
        far = (mc + (cfg.threshold - 1.0) < med_m * cfg.threshold).float()
        lazy = (lg < lam - cfg.lazy_log2).float()
        boost = (lg > lam + cfg.boost_log2).float()
        qr = q.reshape(1, -1)
        vr = pool
        gp = gm.reshape(1, -1)[:, self.flat]  # (1, P): G_ij, j < i
        dist = qr[:, self.pi] + qr[:, self.pj] - (gp + gp)
        close = (dist <= cfg.dup_dist).float() * vr[:, self.pj]  # (1, P)
        padded = torch.cat([close, torch.zeros(1, 1)], dim=1)[:, self.back].reshape(n, n)
        dup = (padded @ self.ones_n > 0.5).float()
        enough = (count > cfg.min_valid - 0.5).float()
        anyf = ((far + lazy + boost + dup) > 0.5).float()
        flags = act - valid + valid * anyf * enough
        w = act - flags
        total = gm @ w
        several = (w.transpose(0, 1) @ self.ones_n > 1.5).float()
        agree = (((total - q * several > 0.0).float() + (mc > 0.0).float()) > 0.5).float()
        c = torch.relu(total) * w * agree
        size = torch.relu(lg - lam - self.knots) @ self.slopes + SIZE_FLOOR
        p = c * size
        return flags.reshape(1, -1), p.reshape(1, -1), tag


class GramLean(GramFast):
    """:class:`GramFast` with the rescales and comparisons that change no value removed (same outputs
    as :func:`marketplace.rule.gram.gram_rule_int`, bit for bit):

    - ``q = diag(G)`` by a gather (``G_ii`` is ``rescale(sum_k v_ik^2)``, exactly the einsum's ``q``);
    - paddings as ``big - big * valid`` (a 0/1 mask times a constant stays at scale 13: no rescale)
      instead of ``(1 - valid) * big`` (the ``1 -`` lifts the mask to scale 13, and the product is
      rescaled);
    - the duplicate matrix padded with a scale-0 zero (a float zero constant lifted the whole
      matrix to scale 13, and its row sums were rescaled), and without the mask of valid ``j``
      (``gm_ij = 0`` for an invalid ``j``, so ``dist >= q_i > dup_dist`` for every valid ``i``,
      and ``dup_i`` only counts for valid ``i``);
    - the median selection's count comparisons only for ``m <= n`` (a count never exceeds n: the
      others are 0), padded with scale-0 zeros;
    - the per-row medians sort the ``n - 1`` off-diagonal entries of each column (the diagonal was
      padded to the top, and the selection never reaches position ``n - 1``: ``count - 1 <= n - 1``);
    - the validity mask applied as two broadcast products instead of an outer product and one.
    """

    def __init__(self, n: int, k: int, cfg: GramConfig | None = None, batcher: bool = False) -> None:
        super().__init__(n, k, cfg)
        self.batcher = batcher
        """Sort with the Batcher networks (no shuffle columns; the full column, diagonal padded) instead
        of ezkl's TopK."""
        self.register_buffer("steps_n", torch.arange(n + 1, dtype=torch.float32).reshape(1, -1) - 0.5)
        self.diag = [i * n + i for i in range(n)]
        self.pad_t = list(range(n + 1)) + [n + 1] * (n + 1)  # (1, 2n+2) from [t_0..t_n, 0]
        # column i of the (n-1, n) off-diagonal matrix: G_ji for j != i, j ascending
        self.off = [(j + (j >= i)) * n + i for j in range(n - 1) for i in range(n)]
        self.off_row = [j + (j >= i) for j in range(n - 1) for i in range(n)]

    def _sort_cols(self, x: torch.Tensor) -> torch.Tensor:
        return GramCircuit._sort_cols(self, x) if self.batcher else super()._sort_cols(x)

    def _gram(self, v: torch.Tensor) -> torch.Tensor:
        """``G = V V^T``, rescaled (one matmul: ezkl checks it with Freivalds' argument and rescales
        all n^2 entries)."""
        return v @ v.transpose(0, 1)

    def _weights_off(self, t: torch.Tensor) -> torch.Tensor:
        """:meth:`_weights` without the last position (its weight is 0 for counts below n)."""
        return self._weights(t)[:, : self.n - 1]

    def _t(self, count: torch.Tensor, zero: torch.Tensor) -> torch.Tensor:
        """``[count > m - 1/2]`` for m = 0..2n+1 from n + 1 comparisons, padded with ``zero`` (1, 1)."""
        t = (count > self.steps_n).float()  # (1, n + 1)
        return torch.cat([t, zero], dim=1)[:, self.pad_t]

    def forward(self, *inputs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        cfg, k, n = self.cfg, self.k, self.n
        rows, tag = inputs[:n], inputs[n]
        x = torch.cat(rows, dim=0)
        v = x[:, :k]
        lg = x[:, k : k + 1]
        act = (x[:, k + 1 : k + 2] > 0.5).float()
        gram = self._gram(v)
        q = gram.reshape(1, -1)[:, self.diag].reshape(-1, 1)
        valid = act * (q >= 1.0 - cfg.unit_tol).float() * (q <= 1.0 + cfg.unit_tol).float()
        pool = valid.transpose(0, 1)
        gm = gram * valid * pool
        count = pool @ self.ones_n
        zero = (count < -0.5).float()  # (1, 1): 0 at scale 0 (a constant 0 would lift what it joins to scale 13)
        pad = cfg.big - valid * cfg.big  # (n, 1) at scale 13, exact
        if self.batcher:
            y = gm + pad + self.eye * cfg.big
            m = self._weights(self._t(count - 1.0, zero)) @ self._sort_cols(y)
        else:
            y = gm.reshape(1, -1)[:, self.off].reshape(n - 1, n) + pad.reshape(1, -1)[:, self.off_row].reshape(n - 1, n)
            m = self._weights_off(self._t(count - 1.0, zero)) @ self._sort_cols(y)
        big2 = torch.cat([pad, cfg.big_log - valid * cfg.big_log], dim=1)
        sorted_s = self._sort_cols(torch.cat([m.transpose(0, 1), lg], dim=1) + big2)
        stats = self._weights(self._t(count, zero)) @ sorted_s
        med_m = stats[:, 0:1]
        lam = stats[:, 1:2]
        mc = m.transpose(0, 1)
        far = (mc + (cfg.threshold - 1.0) < med_m * cfg.threshold).float()
        lazy = (lg < lam - cfg.lazy_log2).float()
        boost = (lg > lam + cfg.boost_log2).float()
        qr = q.reshape(1, -1)
        gp = gm.reshape(1, -1)[:, self.flat]
        dist = qr[:, self.pi] + qr[:, self.pj] - (gp + gp)
        # no mask for j: gm_ij = 0 for an invalid j, so dist >= q_i > dup_dist for every valid i (and
        # dup_i only counts for valid i)
        close = (dist <= cfg.dup_dist).float()  # (1, P), scale 0
        padded = torch.cat([close, zero], dim=1)[:, self.back].reshape(n, n)
        dup = (padded @ self.ones_n > 0.5).float()
        enough = (count > cfg.min_valid - 0.5).float()
        anyf = ((far + lazy + boost + dup) > 0.5).float()
        flags = act - valid + valid * anyf * enough
        w = act - flags
        total = gm @ w
        several = (w.transpose(0, 1) @ self.ones_n > 1.5).float()
        agree = (((total - q * several > 0.0).float() + (mc > 0.0).float()) > 0.5).float()
        c = torch.relu(total) * w * agree
        size = torch.relu(lg - lam - self.knots) @ self.slopes + SIZE_FLOOR
        p = c * size
        return flags.reshape(1, -1), p.reshape(1, -1), tag
