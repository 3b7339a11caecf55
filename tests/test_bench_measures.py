"""What two benchmarks measure beside their timings (no timing is checked): the Shapley values of the game
restricted to the unflagged trainers (``bench.scoring``), and the raw ``cat`` of ``bench.scale``, which must
read every byte of the objects from the real local IPFS node."""
# ruff: noqa: F811  (the fixtures imported from tests.ipfs_fixtures are used as test arguments)

from __future__ import annotations

from itertools import combinations
from math import factorial

import numpy as np
import pytest

from bench.scale import raw_cat
from bench.scoring import restricted_shapley
from marketplace.adapters.ipfs.ipfs import IpfsClient
from research.baselines import exact_shapley
from tests.ipfs_fixtures import ipfs, ipfs_node  # noqa: F401

WEIGHTS = np.array([1.0, 2.0, 3.0, 4.0, 5.0])


def game(subset: frozenset[int]) -> float:
    """Additive values, plus a bonus for 0 and 4 together and a penalty whenever 3 is in (a 'flagged' one):
    3 lowers every coalition it joins by 6, and hurts 1 the more when both are in."""
    v = float(WEIGHTS[list(subset)].sum()) if subset else 0.0
    if {0, 4} <= subset:
        v += 2.0
    if 3 in subset:
        v -= 10.0
        if 1 in subset:
            v -= 3.0
    return v


def test_restricted_shapley_values_the_coalitions_of_the_members_only() -> None:
    members = [0, 1, 2, 4]  # trainer 3 flagged
    phi_u = restricted_shapley(game, members)
    # Computed by hand in the game without 3: additive, and the 0-4 bonus split between them.
    assert phi_u == pytest.approx([1.0 + 1.0, 2.0, 3.0, 5.0 + 1.0])
    # Efficiency: the members share exactly what their grand coalition is worth.
    assert phi_u.sum() == pytest.approx(game(frozenset(members)) - game(frozenset()))
    # The Shapley sum written out over the members' coalitions (order of members kept).
    for pos, i in enumerate(members):
        others = [j for j in members if j != i]
        n = len(members)
        brute = 0.0
        for k in range(n):
            for coalition in combinations(others, k):
                s = frozenset(coalition)
                weight = factorial(k) * factorial(n - k - 1) / factorial(n)
                brute += weight * (game(s | {i}) - game(s))
        assert phi_u[pos] == pytest.approx(brute)
    # In the full game trainer 1 pays for 3's presence and ranks below 0; restricted, it does not.
    phi = exact_shapley(game, 5)
    assert phi[1] < phi[0] and phi_u[1] == pytest.approx(2.0) and phi_u[0] == pytest.approx(2.0)


def test_raw_cat_reads_every_byte_of_every_object(ipfs: IpfsClient) -> None:
    blobs = [np.random.default_rng(i).bytes(size) for i, size in enumerate([1, 300_000, 2_100_000])]
    cids = [ipfs.add(b) for b in blobs]
    assert raw_cat(ipfs.api_url, cids) == sum(len(b) for b in blobs)
    assert raw_cat(ipfs.api_url, cids[1:2] * 3) == 3 * len(blobs[1])
    with pytest.raises(RuntimeError, match="raw cat of"):
        raw_cat(ipfs.api_url, ["not-a-cid"])
