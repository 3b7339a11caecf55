"""ModelStore against the real local node: checked gets, and a round that goes on without bad updates."""
# ruff: noqa: F811  (the fixtures imported from tests.ipfs_fixtures are used as test arguments)

from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis.extra import numpy as hnp

from marketplace.adapters.ipfs.errors import CidMismatch, NonFiniteValues, ObjectTooLarge, WrongShape
from marketplace.adapters.ipfs.ipfs import IpfsClient
from marketplace.adapters.ipfs.store import ModelStore
from tests.ipfs_fixtures import ipfs, ipfs_node  # noqa: F401

EXPECTED = {"w": ((8, 4), np.float32), "b": ((4,), np.float32)}


def update(seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {"w": rng.normal(size=(8, 4)).astype(np.float32), "b": rng.normal(size=4).astype(np.float32)}


@pytest.fixture
def store(ipfs: IpfsClient) -> ModelStore:
    return ModelStore(ipfs, max_bytes=1 << 20)


def test_put_get_tensors(store: ModelStore, ipfs: IpfsClient) -> None:
    cid = store.put_tensors(update(1), {"model": "mlp", "round": 7})
    assert ipfs.is_pinned(cid)
    bundle = store.get_tensors(cid, EXPECTED)
    assert bundle.cid == cid and bundle.metadata == {"model": "mlp", "round": "7"}
    np.testing.assert_array_equal(bundle["w"], update(1)["w"])


def test_put_torch_get_numpy(store: ModelStore) -> None:
    t = {"w": torch.randn(8, 4), "b": torch.randn(4)}
    bundle = store.get_tensors(store.put_tensors(t), EXPECTED)
    np.testing.assert_array_equal(bundle["w"], t["w"].numpy())


class LyingClient(IpfsClient):
    """A node that answers with other bytes than the CID names (what a tampering node would do)."""

    def cat(self, cid: str, *, max_bytes: int | None = None) -> bytes:
        data = bytearray(super().cat(cid, max_bytes=max_bytes))
        data[-1] ^= 0xFF
        return bytes(data)


def test_tampered_content_is_rejected(ipfs_node: object, store: ModelStore) -> None:
    cid = store.put_tensors(update(2))
    with LyingClient(store.client.api_url) as liar, pytest.raises(CidMismatch, match=f"does not match CID {cid}"):
        ModelStore(liar).get_tensors(cid, EXPECTED)


def test_oversize_object_rejected(store: ModelStore) -> None:
    cid = store.put_tensors({"w": np.zeros((600, 600), np.float32)})
    with pytest.raises(ObjectTooLarge):
        store.get_tensors(cid)


def test_get_tensors_raises_specific_errors(store: ModelStore) -> None:
    nan = update(5)
    nan["w"][0, 0] = np.inf
    with pytest.raises(NonFiniteValues):
        store.get_tensors(store.put_tensors(nan), EXPECTED)
    with pytest.raises(WrongShape):
        store.get_tensors(
            store.put_tensors({"w": np.zeros((8, 5), np.float32), "b": np.zeros(4, np.float32)}), EXPECTED
        )


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(hnp.arrays(np.float32, hnp.array_shapes(min_dims=1, max_dims=3, max_side=16)))
def test_store_round_trip_property(store: ModelStore, array: np.ndarray) -> None:
    if not np.isfinite(array).all():
        array = np.nan_to_num(array, nan=0.0, posinf=1.0, neginf=-1.0)
    cid = store.put_tensors({"x": array}, {"seed": os.urandom(4).hex()})
    bundle = store.get_tensors(cid, {"x": (array.shape, np.float32)})
    np.testing.assert_array_equal(bundle["x"], array)


def test_fetched_objects_are_freed_when_the_caller_drops_them(ipfs: IpfsClient) -> None:
    """An aggregator fetches N updates one by one and keeps only what it copies out: memory must not
    grow by one update per fetch (multiformats' internal exceptions used to leave reference cycles
    that kept every fetched object alive until the cyclic GC's next generation-1 pass)."""
    import gc
    import tracemalloc

    store = ModelStore(ipfs, max_bytes=64 << 20)
    size = 2_000_000  # float32: 8 MB per update
    cid = store.put_tensors({"w": np.arange(size, dtype=np.float32)})
    gc.collect()
    gc.disable()  # only what the fetch path frees itself counts
    tracemalloc.start()
    try:
        baseline, _ = tracemalloc.get_traced_memory()
        for _ in range(4):
            bundle = store.get_tensors(cid, {"w": ((size,), np.float32)})
            assert float(bundle["w"][-1]) == size - 1
            del bundle
        held, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
        gc.enable()
    assert held - baseline < 4 * size  # less than one update's bytes: nothing fetched is still alive
