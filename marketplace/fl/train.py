"""Local training and evaluation for the registered architectures.

Training is deterministic given ``seed``: the only randomness is the mini-batch order,
drawn from a private ``torch.Generator``; the global torch RNG is not touched.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Mapping

import numpy as np
import torch
from torch import nn

from marketplace.fl.data import LocalData
from marketplace.fl.models import StateDict, build_model

Progress = Callable[[int, int], None]
"""Called as ``progress(step, total_steps)`` after every optimiser step (1-based)."""


def _as_data(data: LocalData | tuple[np.ndarray, np.ndarray]) -> LocalData:
    return data if isinstance(data, LocalData) else LocalData.of(*data)


def load_state(model_name: str, state: StateDict) -> nn.Module:
    """A fresh ``model_name`` module carrying ``state`` (strict key/shape match)."""
    model = build_model(model_name, 0)
    model.load_state_dict(OrderedDict(state), strict=True)
    return model


def train_local(
    model_name: str,
    global_state: StateDict,
    data: LocalData | tuple[np.ndarray, np.ndarray],
    epochs: int = 1,
    lr: float = 0.1,
    batch_size: int = 32,
    seed: int = 0,
    progress: Progress | None = None,
) -> OrderedDict[str, torch.Tensor]:
    """Train a copy of the global model on local data with plain SGD + cross-entropy.

    Returns:
        The update ``new_state - global_state`` as an ordered state dict (same keys,
        shapes and dtypes as ``global_state``).
    """
    local = _as_data(data)
    if len(local) == 0:
        raise ValueError("no local data")
    model = load_state(model_name, global_state)
    model.train()
    x = torch.from_numpy(local.x)
    y = torch.from_numpy(local.y)
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    loss_fn = nn.CrossEntropyLoss()
    steps_per_epoch = -(-len(local) // batch_size)
    total = epochs * steps_per_epoch
    step = 0
    for _ in range(epochs):
        perm = torch.randperm(len(local), generator=gen)
        for start in range(0, len(local), batch_size):
            idx = perm[start : start + batch_size]
            opt.zero_grad()
            loss = loss_fn(model(x[idx]), y[idx])
            loss.backward()
            opt.step()
            step += 1
            if progress is not None:
                progress(step, total)
    new_state = model.state_dict()
    return OrderedDict((k, (new_state[k] - v).detach().clone()) for k, v in global_state.items())


@torch.no_grad()
def evaluate(model_name: str, state: StateDict, x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Mean cross-entropy loss and accuracy of ``state`` on ``(x, y)``."""
    model = load_state(model_name, state)
    model.eval()
    logits = model(torch.from_numpy(np.asarray(x, dtype=np.float32)))
    target = torch.from_numpy(np.asarray(y, dtype=np.int64))
    loss = nn.functional.cross_entropy(logits, target).item()
    acc = (logits.argmax(dim=1) == target).float().mean().item()
    return float(loss), float(acc)


def add_update(state: Mapping[str, torch.Tensor], update: StateDict) -> OrderedDict[str, torch.Tensor]:
    """``state + update``, key by key."""
    return OrderedDict((k, v + update[k]) for k, v in state.items())
