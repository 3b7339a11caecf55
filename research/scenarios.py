"""Constructed benchmark cases: trainers whose data quality is known by construction."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from marketplace.fl.data import LocalData, load_digits_data


def label_noise_shards(
    noise_rates: Sequence[float], shard_size: int = 150, n_val: int = 300, seed: int = 0
) -> tuple[list[LocalData], LocalData]:
    """Equal-size digits shards where trainer i has ``noise_rates[i]`` of its labels randomised.

    Returns ``(shards, validation)``; the validation set is disjoint from every shard.
    Needs ``n_val + len(noise_rates) * shard_size <= 1797``.
    """
    data = load_digits_data()
    if n_val + len(noise_rates) * shard_size > len(data):
        raise ValueError("not enough digits for that many shards")
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(data))
    val = LocalData(data.x[order[:n_val]], data.y[order[:n_val]])
    shards = []
    for i, rate in enumerate(noise_rates):
        idx = order[n_val + i * shard_size : n_val + (i + 1) * shard_size]
        y = data.y[idx].copy()
        k = int(rate * len(y))
        y[:k] = rng.integers(0, 10, k)
        shards.append(LocalData(data.x[idx], y))
    return shards, val
