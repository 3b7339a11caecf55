"""Utility functions v(S) for the reference valuations in ``research.baselines.contribution``."""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch
from torch import nn

from marketplace.fl.models import StateDict, state_to_vector, vector_to_state
from marketplace.fl.train import load_state
from marketplace.rule.aggregate import fedavg
from research.baselines.contribution import Utility
from research.simulate import apply_update


def fedavg_utility(
    model_name: str,
    global_state: StateDict,
    updates: np.ndarray,
    x_val: np.ndarray,
    y_val: np.ndarray,
    metric: Literal["neg_loss", "accuracy"] = "neg_loss",
    num_samples: np.ndarray | None = None,
) -> Utility:
    """``v(S)`` = metric on ``(x_val, y_val)`` of ``global + FedAvg(updates[S])`` (memoised).

    ``v({})`` is the metric of the unchanged global model. ``num_samples=None`` averages
    with equal weights.
    """
    base = state_to_vector(global_state)
    u = np.asarray(updates, dtype=np.float32)
    n = u.shape[0]
    layout = {k: (tuple(t.shape), str(t.dtype).removeprefix("torch.")) for k, t in global_state.items()}
    cache: dict[frozenset[int], float] = {}
    model = load_state(model_name, global_state).eval()
    x = torch.from_numpy(np.asarray(x_val, dtype=np.float32))
    y = torch.from_numpy(np.asarray(y_val, dtype=np.int64))

    def utility(subset: frozenset[int]) -> float:
        key = frozenset(subset)
        if key not in cache:
            mask = np.zeros(n, dtype=bool)
            mask[list(key)] = True
            agg = fedavg(u, mask, np.zeros(n, dtype=bool), num_samples)
            model.load_state_dict(vector_to_state(apply_update(base, agg), layout))
            with torch.no_grad():
                logits = model(x)
            if metric == "neg_loss":
                cache[key] = -float(nn.functional.cross_entropy(logits, y))
            else:
                cache[key] = float((logits.argmax(dim=1) == y).float().mean())
        return cache[key]

    return utility
