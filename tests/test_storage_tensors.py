"""safetensors serialization and the checks that reject bad model updates."""

from __future__ import annotations

import io
import json
import pickle
import struct

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from marketplace.adapters.ipfs.errors import (
    InvalidUpdate,
    NonFiniteValues,
    NotSafetensors,
    UpdateTooLarge,
    WrongDtype,
    WrongKeys,
    WrongShape,
)
from marketplace.adapters.ipfs.tensors import dtype_code, dumps, load_checked, read_header

EXPECTED = {"w": ((3, 4), np.float32), "b": ((4,), "float32")}


def good() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {"w": rng.normal(size=(3, 4)).astype(np.float32), "b": np.zeros(4, np.float32)}


def test_round_trip_numpy_with_metadata() -> None:
    data = dumps(good(), {"model": "mlp", "round": 3})
    bundle = load_checked(data, EXPECTED)
    assert bundle.metadata == {"model": "mlp", "round": "3"}
    np.testing.assert_array_equal(bundle["w"], good()["w"])
    assert set(bundle) == {"w", "b"} and bundle.nbytes == len(data)


def test_round_trip_torch() -> None:
    tensors = {"w": torch.randn(3, 4), "h": torch.randn(2, dtype=torch.bfloat16)}
    data = dumps(tensors)
    bundle = load_checked(data, {"w": ((3, 4), torch.float32), "h": ((2,), torch.bfloat16)}, framework="torch")
    assert torch.equal(bundle["w"], tensors["w"]) and torch.equal(bundle["h"], tensors["h"])
    with pytest.raises(WrongDtype, match="framework='torch'"):
        load_checked(data)


class Evil:
    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (print, ("pwned",))


@pytest.mark.parametrize(
    "payload",
    [
        pickle.dumps({"w": np.zeros((3, 4), np.float32)}),
        pickle.dumps(Evil()),
        b"",
        b"1234567",
        struct.pack("<Q", 2) + b"[]",
        struct.pack("<Q", 4) + b"\xff\xfe{}",
    ],
    ids=["pickle", "pickle-rce", "empty", "short", "not-object", "not-utf8"],
)
def test_non_safetensors_payloads_are_rejected(payload: bytes, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(NotSafetensors, match="not a safetensors file"):
        load_checked(payload)
    assert "pwned" not in capsys.readouterr().out


def test_torch_save_payload_is_rejected() -> None:
    buf = io.BytesIO()
    torch.save({"w": torch.zeros(3, 4)}, buf)
    with pytest.raises(NotSafetensors, match=r"zip/torch\.save"):
        load_checked(buf.getvalue())


def _with_header(header: dict[str, object], body: bytes) -> bytes:
    raw = json.dumps(header).encode()
    return struct.pack("<Q", len(raw)) + raw + body


@pytest.mark.parametrize(
    ("header", "body", "match"),
    [
        ({"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 4]}}, b"\0" * 4, "do not match shape"),
        ({"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}, b"\0" * 8, "trailing bytes"),
        ({"w": {"dtype": "X9", "shape": [1], "data_offsets": [0, 4]}}, b"\0" * 4, "unknown dtype"),
        ({"w": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]}}, b"\0" * 4, "bad shape"),
        (
            {
                "a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]},
                "b": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]},
            },
            b"\0" * 4,
            "overlaps",
        ),
        ({"__metadata__": {"round": 3}}, b"", "strings to strings"),
    ],
)
def test_malformed_headers(header: dict[str, object], body: bytes, match: str) -> None:
    with pytest.raises(NotSafetensors, match=match):
        read_header(_with_header(header, body))


def test_truncated_file_is_rejected() -> None:
    with pytest.raises(NotSafetensors):
        load_checked(dumps(good())[:-1])


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_values_rejected(bad: float) -> None:
    tensors = good()
    tensors["w"][1, 2] = bad
    with pytest.raises(NonFiniteValues, match="tensor 'w' has"):
        load_checked(dumps(tensors), EXPECTED)
    assert load_checked(dumps(tensors), allow_non_finite=True)["w"].shape == (3, 4)


def test_non_finite_torch_rejected() -> None:
    with pytest.raises(NonFiniteValues, match="1 NaN and 0 infinite"):
        load_checked(dumps({"w": torch.tensor([1.0, float("nan")])}), framework="torch")


def test_wrong_shape_dtype_keys() -> None:
    tensors = good()
    with pytest.raises(WrongShape, match=r"'w' has shape \(4, 3\), expected \(3, 4\)"):
        load_checked(dumps({**tensors, "w": tensors["w"].T.copy()}), EXPECTED)
    with pytest.raises(WrongDtype, match="'b' has dtype F64, expected F32"):
        load_checked(dumps({**tensors, "b": tensors["b"].astype(np.float64)}), EXPECTED)
    with pytest.raises(WrongKeys, match=r"missing \['b'\], unexpected \['c'\]"):
        load_checked(dumps({"w": tensors["w"], "c": tensors["b"]}), EXPECTED)


def test_oversize_rejected_before_parsing() -> None:
    data = dumps(good())
    with pytest.raises(UpdateTooLarge, match=f"{len(data)} bytes, over the limit of 100"):
        load_checked(data, max_bytes=100)


def test_all_rejections_are_invalid_update() -> None:
    for cls in (NotSafetensors, UpdateTooLarge, WrongKeys, WrongShape, WrongDtype, NonFiniteValues):
        assert issubclass(cls, InvalidUpdate)


def test_dtype_codes() -> None:
    assert dtype_code(np.float32) == dtype_code(torch.float32) == dtype_code("float32") == dtype_code("F32") == "F32"
    assert dtype_code(torch.bfloat16) == "BF16"
    with pytest.raises(ValueError, match="no safetensors equivalent"):
        dtype_code(np.complex64)


arrays = hnp.arrays(
    np.float32,
    hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=6),
    elements=st.floats(width=32, allow_nan=False, allow_infinity=False),
)


@settings(max_examples=60, deadline=None)
@given(st.dictionaries(st.text("abcdefgh._", min_size=1, max_size=8), arrays, max_size=4))
def test_round_trip_property(tensors: dict[str, np.ndarray]) -> None:
    data = dumps(tensors, {"round": "1"})
    expected = {k: (v.shape, v.dtype) for k, v in tensors.items()}
    bundle = load_checked(data, expected)
    assert set(bundle) == set(tensors)
    for k, v in tensors.items():
        np.testing.assert_array_equal(bundle[k], v)


def test_same_tensors_and_metadata_always_serialize_to_the_same_bytes() -> None:
    # safetensors writes metadata in hash-map order; the CID of a model must not depend on it.
    tensors = {"w": np.arange(6, dtype=np.float32).reshape(2, 3), "b": np.ones(3, np.float32)}
    meta = {"kind": "model", "project": "1", "round": "2", "trainer": "0xabc"}
    assert len({dumps(tensors, meta) for _ in range(20)}) == 1
    torch_tensors = {k: torch.from_numpy(v) for k, v in tensors.items()}
    assert len({dumps(torch_tensors, meta) for _ in range(20)}) == 1
