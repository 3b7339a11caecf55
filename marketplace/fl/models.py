"""Model registry and flat-vector <-> state-dict helpers.

Every registered architecture consumes a flat float32 feature vector of length
``INPUT_DIM`` (64 = an 8x8 grey image scaled to [0, 1]) and emits ``N_CLASSES``
logits, so the same data shards work for all of them.

The *ordered* state dict of a model is the canonical parameter layout: a flat
vector is the concatenation of every tensor in ``state_dict()`` order, each
flattened in row-major (C) order, as float32. ``param_spec`` exposes that layout
so that downloaded weights can be validated before use.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

INPUT_DIM = 64
N_CLASSES = 10

Shape = tuple[int, ...]
ParamSpec = dict[str, tuple[Shape, str]]
StateDict = Mapping[str, torch.Tensor]


def _mlp() -> nn.Module:
    return nn.Sequential(nn.Linear(INPUT_DIM, 32), nn.ReLU(), nn.Linear(32, N_CLASSES))


def _cnn() -> nn.Module:
    return nn.Sequential(
        nn.Unflatten(1, (1, 8, 8)),
        nn.Conv2d(1, 8, kernel_size=3, padding=1),
        nn.ReLU(),
        nn.Conv2d(8, 16, kernel_size=3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(16 * 4 * 4, N_CLASSES),
    )


@dataclass(frozen=True)
class Architecture:
    """A registered architecture: a name, a zero-argument builder and a description."""

    name: str
    builder: Callable[[], nn.Module]
    description: str


REGISTRY: dict[str, Architecture] = {
    "mlp": Architecture("mlp", _mlp, "MLP 64 -> 32 (ReLU) -> 10"),
    "cnn": Architecture("cnn", _cnn, "CNN 1x8x8 -> conv8 -> conv16 -> maxpool -> linear 10"),
}


def available_models() -> list[str]:
    """Names of all registered architectures, sorted."""
    return sorted(REGISTRY)


def _arch(name: str) -> Architecture:
    try:
        return REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown model {name!r}; available: {available_models()}") from None


def build_model(name: str, seed: int = 0) -> nn.Module:
    """Build architecture ``name`` with deterministic initial weights derived from ``seed``.

    The global torch RNG state is saved and restored, so calling this has no side effects.
    """
    arch = _arch(name)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = arch.builder()
    return model


def param_spec(name: str) -> ParamSpec:
    """Ordered ``{tensor name: (shape, dtype name)}`` of architecture ``name``'s state dict."""
    model = build_model(name, 0)
    return {key: (tuple(t.shape), str(t.dtype).removeprefix("torch.")) for key, t in model.state_dict().items()}


def num_params(name: str) -> int:
    """Length of the flat parameter vector of architecture ``name``."""
    return sum(int(np.prod(shape)) for shape, _ in param_spec(name).values())


def validate_state(name: str, state: StateDict) -> None:
    """Raise ``ValueError`` unless ``state`` has exactly the keys, shapes and dtypes of ``name``.

    Also rejects non-finite values (NaN/inf), which would poison aggregation.
    """
    spec = param_spec(name)
    if list(state.keys()) != list(spec.keys()):
        raise ValueError(f"state keys {list(state.keys())} != expected {list(spec.keys())}")
    for key, (shape, dtype) in spec.items():
        t = state[key]
        if tuple(t.shape) != shape:
            raise ValueError(f"{key}: shape {tuple(t.shape)} != expected {shape}")
        if str(t.dtype).removeprefix("torch.") != dtype:
            raise ValueError(f"{key}: dtype {t.dtype} != expected {dtype}")
        if not bool(torch.isfinite(t).all()):
            raise ValueError(f"{key}: contains non-finite values")


def state_to_vector(state: StateDict) -> np.ndarray:
    """Concatenate the tensors of ``state`` (in its order) into one flat float32 vector."""
    parts = [t.detach().cpu().reshape(-1).to(torch.float32).numpy() for t in state.values()]
    if not parts:
        return np.zeros(0, dtype=np.float32)
    return np.concatenate(parts).astype(np.float32, copy=False)


def tensors_to_vector(tensors: Mapping[str, Any], spec: str | ParamSpec) -> np.ndarray:
    """Flatten named arrays or tensors (e.g. loaded from safetensors, in any key order) into one
    float32 vector laid out in the architecture's parameter order."""
    layout = param_spec(spec) if isinstance(spec, str) else spec
    missing = [k for k in layout if k not in tensors]
    if missing:
        raise ValueError(f"missing tensors: {missing}")
    parts = [np.asarray(tensors[k].detach().cpu() if hasattr(tensors[k], "detach") else tensors[k]) for k in layout]
    return np.concatenate([p.reshape(-1).astype(np.float32, copy=False) for p in parts])


def vector_to_state(vector: np.ndarray, spec: str | ParamSpec) -> OrderedDict[str, torch.Tensor]:
    """Inverse of :func:`state_to_vector`.

    Args:
        vector: flat vector whose length equals the total parameter count.
        spec: an architecture name or a :data:`ParamSpec` giving the ordered layout.
    """
    layout = param_spec(spec) if isinstance(spec, str) else spec
    flat = np.asarray(vector, dtype=np.float32).reshape(-1)
    total = sum(int(np.prod(shape)) for shape, _ in layout.values())
    if flat.size != total:
        raise ValueError(f"vector has {flat.size} entries, layout needs {total}")
    out: OrderedDict[str, torch.Tensor] = OrderedDict()
    offset = 0
    for key, (shape, _dtype) in layout.items():
        n = int(np.prod(shape))
        out[key] = torch.from_numpy(flat[offset : offset + n].copy()).reshape(shape)
        offset += n
    return out
