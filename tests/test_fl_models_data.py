"""Model registry, state <-> vector helpers, local data loaders and digits partitioning."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from marketplace.fl.data import (
    TEST_FILE,
    VALIDATION_FILE,
    LocalData,
    UnsupportedFormatError,
    load_local_data,
    load_npz,
    partition_digits,
)
from marketplace.fl.models import (
    available_models,
    build_model,
    num_params,
    param_spec,
    state_to_vector,
    validate_state,
    vector_to_state,
)


@pytest.mark.parametrize("name", ["mlp", "cnn"])
def test_models_forward_and_roundtrip(name: str) -> None:
    model = build_model(name, seed=1)
    assert model(torch.zeros(5, 64)).shape == (5, 10)
    state = model.state_dict()
    vec = state_to_vector(state)
    assert vec.dtype == np.float32 and vec.size == num_params(name)
    back = vector_to_state(vec, name)
    assert list(back) == list(state)
    for k in state:
        assert torch.equal(back[k], state[k])
    validate_state(name, back)
    spec = param_spec(name)
    assert {k: (tuple(v.shape), "float32") for k, v in state.items()} == spec


def test_build_model_is_seeded_and_side_effect_free() -> None:
    torch.manual_seed(123)
    expected = torch.rand(1)
    torch.manual_seed(123)
    a = state_to_vector(build_model("mlp", 7).state_dict())
    assert torch.equal(torch.rand(1), expected)  # global RNG untouched
    b = state_to_vector(build_model("mlp", 7).state_dict())
    c = state_to_vector(build_model("mlp", 8).state_dict())
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert available_models() == ["cnn", "mlp"]
    assert param_spec("mlp")["0.weight"] == ((32, 64), "float32")
    with pytest.raises(ValueError, match="unknown model"):
        build_model("resnet", 0)


def test_validate_state_rejects_bad_weights() -> None:
    state = build_model("mlp", 0).state_dict()
    bad_shape = dict(state, **{"2.bias": torch.zeros(11)})
    with pytest.raises(ValueError, match="shape"):
        validate_state("mlp", bad_shape)
    bad_dtype = dict(state, **{"2.bias": torch.zeros(10, dtype=torch.float64)})
    with pytest.raises(ValueError, match="dtype"):
        validate_state("mlp", bad_dtype)
    nan = dict(state, **{"2.bias": torch.full((10,), float("nan"))})
    with pytest.raises(ValueError, match="non-finite"):
        validate_state("mlp", nan)
    with pytest.raises(ValueError, match="keys"):
        validate_state("mlp", {"0.weight": state["0.weight"]})
    with pytest.raises(ValueError, match="entries"):
        vector_to_state(np.zeros(3, dtype=np.float32), "mlp")


def test_load_csv_npz(tmp_path: Path) -> None:
    x = np.arange(12, dtype=np.float32).reshape(3, 4) / 12
    y = np.array([0, 2, 1])
    csv = tmp_path / "d.csv"
    np.savetxt(csv, np.column_stack([x, y]), delimiter=",", header="a,b,c,d,label", comments="")
    got = load_local_data(csv)
    np.testing.assert_allclose(got.x, x, rtol=1e-6)
    assert got.y.tolist() == [0, 2, 1] and got.y.dtype == np.int64
    np.savetxt(csv, np.column_stack([x, y]), delimiter=",")  # no header
    assert load_local_data(csv).y.tolist() == [0, 2, 1]
    npz = LocalData.of(x, y).save(tmp_path / "d.npz")
    assert np.array_equal(load_local_data(npz).x, x)
    with pytest.raises(UnsupportedFormatError):
        load_local_data(tmp_path / "d.parquet")


def test_load_image_folder(tmp_path: Path) -> None:
    pil = pytest.importorskip("PIL.Image")
    for label in ("3", "7"):
        (tmp_path / label).mkdir()
        for k in range(2):
            img = pil.fromarray(np.full((16, 16), 255 if label == "7" else 0, dtype=np.uint8))
            img.save(tmp_path / label / f"{k}.png")
    data = load_local_data(tmp_path)
    assert data.x.shape == (4, 64)
    assert sorted(data.y.tolist()) == [3, 3, 7, 7]
    assert np.allclose(data.x[data.y == 7], 1.0) and np.allclose(data.x[data.y == 3], 0.0)


@pytest.mark.parametrize("scheme", ["iid", "dirichlet"])
def test_partition_digits_deterministic(tmp_path: Path, scheme: str) -> None:
    a = partition_digits(5, scheme, alpha=0.3, seed=4, out_dir=tmp_path / "a")
    b = partition_digits(5, scheme, alpha=0.3, seed=4, out_dir=tmp_path / "b")
    assert [p.name for p in a] == [f"trainer_{i:03d}.npz" for i in range(5)]
    shards = [load_npz(p) for p in a]
    for p, q in zip(a, b, strict=True):
        assert np.array_equal(load_npz(p).y, load_npz(q).y)
    val, test = load_npz(tmp_path / "a" / VALIDATION_FILE), load_npz(tmp_path / "a" / TEST_FILE)
    assert sum(len(s) for s in shards) + len(val) + len(test) == 1797
    assert float(shards[0].x.min()) >= 0.0 and float(shards[0].x.max()) <= 1.0
    c = partition_digits(5, scheme, alpha=0.3, seed=5, out_dir=tmp_path / "c")
    assert not np.array_equal(load_npz(c[0]).y, shards[0].y)
    if scheme == "dirichlet":  # label skew: some shard misses a class or is dominated by one
        top = [np.bincount(s.y, minlength=10).max() / len(s) for s in shards]
        assert max(top) > 0.2
