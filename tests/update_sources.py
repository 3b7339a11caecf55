"""Update sources for tests that need submissions but no training."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from marketplace.fl.models import num_params
from marketplace.roles.trainer import UpdateContext


@dataclass(frozen=True)
class FixedUpdate:
    """An update source that always returns ``update``."""

    update: np.ndarray

    def make_update(self, ctx: UpdateContext) -> np.ndarray:
        return self.update


def agreeing_updates(n: int, seed: int, model: str = "mlp") -> list[np.ndarray]:
    """``n`` updates that agree (a shared direction plus noise): the rule flags none of them."""
    rng = np.random.default_rng(seed)
    base = rng.normal(size=num_params(model))
    return [(0.01 * (base + 0.5 * rng.normal(size=base.size))).astype(np.float32) for _ in range(n)]
