"""Malformed model updates on the path the aggregator takes: ``ModelStore.get_tensors(cid, expected=spec,
max_bytes=...)`` and the safetensors checks under it (``marketplace/storage/tensors.py``).

The aggregator skips (and flags) an update that raises a :class:`StorageError` and goes on with the round;
any other exception would stop the round for everyone, so a trainer could block it with one crafted
file. Every malformed input here must therefore raise a typed ``StorageError`` subclass with a short
message naming the reason, and nothing may ever be unpickled. The hand-picked cases of
``test_storage_tensors.py`` and ``test_storage_store.py`` are not repeated: this file fuzzes with
Hypothesis (random bytes, arbitrary JSON headers, corruptions of a valid update, one defect at a time
against the expected spec) and covers live pickle payloads, huge headers and nesting.
"""

# ruff: noqa: F811  (the fixtures imported from tests.ipfs_fixtures are used as test arguments)
from __future__ import annotations

import io
import json
import pickle
import struct
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from marketplace.adapters.ipfs.errors import (
    InvalidUpdate,
    NonFiniteValues,
    NotSafetensors,
    ObjectTooLarge,
    StorageError,
    UpdateTooLarge,
    WrongDtype,
    WrongKeys,
    WrongShape,
)
from marketplace.adapters.ipfs.ipfs import IpfsClient
from marketplace.adapters.ipfs.store import ModelStore
from marketplace.adapters.ipfs.tensors import DTYPE_SIZES, dumps, load_checked
from marketplace.protocol.safejson import TooDeeplyNested, loads_bounded, nesting_depth
from tests.ipfs_fixtures import ipfs, ipfs_node  # noqa: F401

ROOT = Path(__file__).resolve().parent.parent
#: Like ``param_spec(model)``: ``{name: (shape, dtype name)}`` in state-dict order.
SPEC: dict[str, tuple[tuple[int, ...], str]] = {"fc1.weight": ((4, 3), "float32"), "fc1.bias": ((4,), "float32")}
LIMIT = 1 << 16
#: A rejection reason ends up in logs and in the aggregator's round report: it must stay short.
MAX_MESSAGE = 600
FAST = settings(max_examples=150, deadline=None)


def good() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(7)
    return {name: rng.normal(size=shape).astype(dtype) for name, (shape, dtype) in SPEC.items()}


def with_header(header: Any, body: bytes = b"") -> bytes:
    raw = json.dumps(header).encode()
    return struct.pack("<Q", len(raw)) + raw + body


def rejected(data: bytes, expected: Any = SPEC, framework: str = "numpy", max_bytes: int = LIMIT) -> InvalidUpdate:
    """The typed error ``load_checked`` raises for ``data`` (the test fails on any other outcome)."""
    with pytest.raises(InvalidUpdate) as info:
        load_checked(data, expected, max_bytes, framework=framework)
    assert 0 < len(str(info.value)) <= MAX_MESSAGE, str(info.value)[:2000]
    return info.value


def loaded_or_rejected(data: bytes, expected: Any = SPEC, framework: str = "numpy") -> Any:
    """``load_checked(data)``'s bundle, or None when it raised a typed, short error (any other exception fails)."""
    try:
        bundle = load_checked(data, expected, LIMIT, framework=framework)
    except InvalidUpdate as exc:
        assert 0 < len(str(exc)) <= MAX_MESSAGE, str(exc)[:2000]
        return None
    if expected is not None:  # whatever got through met every check
        assert {k: (tuple(v.shape), str(v.dtype).removeprefix("torch.")) for k, v in bundle.items()} == expected
        assert all(bool(np.isfinite(np.asarray(v)).all()) for v in bundle.values())
    return bundle


# ---------------------------------------------------------------------------- anything at all


@FAST
@given(st.binary(max_size=2048), st.sampled_from(["numpy", "torch"]))
def test_random_bytes_are_rejected(data: bytes, framework: str) -> None:
    assert isinstance(rejected(data, framework=framework), (NotSafetensors, UpdateTooLarge))


json_leaf = st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | st.text(max_size=8)
json_value = st.recursive(
    json_leaf,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=4), inner, max_size=4),
    max_leaves=12,
)
dims = st.integers(-2, 2**66) | st.sampled_from([0, 1, 3, 4, 2**32, 2**63])
entry = st.fixed_dictionaries(
    {
        "dtype": st.sampled_from(sorted(DTYPE_SIZES)) | json_value,
        "shape": st.lists(dims, max_size=4) | json_value,
        "data_offsets": st.lists(st.integers(-1, 64) | st.sampled_from([2**64, True]), min_size=2, max_size=2)
        | json_value,
    },
    optional={"extra": json_value},
)
names = st.sampled_from([*SPEC, "__metadata__", "x"]) | st.text(max_size=6)
headers = st.dictionaries(names, entry | json_value, max_size=4) | json_value


@FAST
@given(headers, st.binary(max_size=64), st.sampled_from(["numpy", "torch"]), st.booleans())
def test_arbitrary_headers_give_typed_errors_or_a_checked_load(
    header: Any, body: bytes, framework: str, with_spec: bool
) -> None:
    """Whatever JSON the header holds (wrong types, unhashable dtypes, huge or negative dims, bools as ints,
    missing or extra keys, metadata of any shape) the loader answers with a typed error or checked tensors."""
    loaded_or_rejected(with_header(header, body), SPEC if with_spec else None, framework)


DEEP = """
import struct, sys
import py_ecc  # imported by web3 and eth-account, as in every node: raises the recursion limit to 100,000
from marketplace.adapters.ipfs.errors import NotSafetensors
from marketplace.adapters.ipfs.tensors import load_checked
assert sys.getrecursionlimit() >= 100_000
for bracket, closing in [(b"[", b"]"), (b'{"a":', b"}")]:
    raw = bracket * 100_000 + b"1" + closing * 100_000
    try:
        load_checked(struct.pack("<Q", len(raw)) + raw, max_bytes=len(raw) + 8)
    except NotSafetensors as exc:
        print(type(exc).__name__, exc)
"""


def test_deeply_nested_header_does_not_crash_the_process() -> None:
    """With web3 imported the recursion limit is 100,000 and ``json.loads`` of ``[[[[...]]]]`` (200 KB) overflowed
    the C stack: a segmentation fault that killed the aggregator. Run in a child process, which must survive."""
    child = subprocess.run([sys.executable, "-c", DEEP], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert child.returncode == 0, child.stderr[-2000:]
    assert child.stdout.count("NotSafetensors") == 2 and "nested 100000 levels deep" in child.stdout


DEEP_PROOF_DOC = """
import sys
import py_ecc  # (as above)
from marketplace.web.proof_docs import proof_doc_reader
print("read:", proof_doc_reader(sys.argv[1], 10.0)(sys.argv[2]))
"""


def test_deeply_nested_proof_document_does_not_crash_the_web_app(ipfs: IpfsClient) -> None:
    """The web app reads each round's proof document (JSON the aggregator pinned) the same way: it must skip one
    nested 500,000 levels deep, not die of it."""
    cid = ipfs.add(b"[" * 500_000 + b"]" * 500_000)
    child = subprocess.run(
        [sys.executable, "-c", DEEP_PROOF_DOC, ipfs.api_url, cid], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert child.returncode == 0, child.stderr[-2000:]
    assert "read: None" in child.stdout


@FAST
@given(st.integers(0, 3), st.integers(0, 40), st.text(alphabet='[]{}"\\', max_size=12))
def test_nesting_depth_is_measured_like_the_parser_nests(inner: int, outer: int, noise: str) -> None:
    """Brackets inside strings (escaped quotes too) do not count; real nesting does, whatever its depth."""
    doc: Any = {"s": noise, "l": [noise]}
    for _ in range(inner):
        doc = [doc, {"k": noise}]
    text = "[" * outer + json.dumps(doc) + "]" * outer
    assert nesting_depth(text) == outer + inner + 2
    if outer + inner + 2 <= 8:
        assert loads_bounded(text, 8) == json.loads(text)
    else:
        with pytest.raises(TooDeeplyNested, match=f"nested {outer + inner + 2} levels deep"):
            loads_bounded(text, 8)


def test_unhashable_dtype_is_not_a_type_error() -> None:
    """``dtype in DTYPE_SIZES`` with a list or an object as dtype raised TypeError (unhashable)."""
    for dtype in [["F32"], {"F32": 1}]:
        error = rejected(with_header({"fc1.bias": {"dtype": dtype, "shape": [4], "data_offsets": [0, 16]}}, bytes(16)))
        assert isinstance(error, NotSafetensors) and "unknown dtype" in str(error)


def test_untrusted_names_and_shapes_are_cut_short_in_messages() -> None:
    long_name = "n" * 100_000
    many_dims = [1] * 50_000
    for header in [
        {long_name: {"dtype": "X", "shape": [1], "data_offsets": [0, 1]}},
        {"w": {"dtype": "U8", "shape": many_dims, "data_offsets": [0, 2]}},
        {f"t{i}": {"dtype": "U8", "shape": [0], "data_offsets": [0, 0]} for i in range(5_000)},
    ]:
        rejected(with_header(header, b"\0"), max_bytes=1 << 20)
    ones = with_header({"fc1.bias": {"dtype": "F32", "shape": many_dims, "data_offsets": [0, 4]}}, bytes(4))
    error = rejected(ones, {"fc1.bias": ((4,), "float32")}, framework="torch", max_bytes=1 << 20)
    assert isinstance(error, WrongShape) and "..." in str(error)


# ---------------------------------------------------------------------------- corruptions of a valid update


@FAST
@given(st.integers(0, 10_000), st.sampled_from(["numpy", "torch"]))
def test_any_truncation_is_rejected(cut: int, framework: str) -> None:
    data = dumps(good())
    assert isinstance(rejected(data[: cut % len(data)], framework=framework), NotSafetensors)


@FAST
@given(st.binary(min_size=1, max_size=64))
def test_trailing_bytes_are_rejected(extra: bytes) -> None:
    assert "trailing bytes" in str(rejected(dumps(good()) + extra))


@FAST
@given(st.data())
def test_flipped_or_overwritten_bytes_are_caught_or_harmless(data: st.DataObject) -> None:
    """Any byte of a valid update changed: a typed error, or tensors that still pass every check (a change in
    the values region is a different, still well-formed update; NaN/Inf bit patterns are caught)."""
    original = bytearray(dumps(good()))
    for _ in range(data.draw(st.integers(1, 4))):
        position = data.draw(st.integers(0, len(original) - 1))
        original[position] = data.draw(st.integers(0, 255))
    loaded_or_rejected(bytes(original), SPEC, data.draw(st.sampled_from(["numpy", "torch"])))


# ---------------------------------------------------------------------------- one defect against the spec

DTYPES = [np.float16, np.float32, np.float64, np.int8, np.int32, np.int64, np.uint8, np.bool_]
specs = st.dictionaries(
    st.text("abcdefgh.", min_size=1, max_size=6),
    st.tuples(hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=5), st.sampled_from(DTYPES)),
    min_size=1,
    max_size=4,
)


@FAST
@given(specs, st.sampled_from(["missing", "extra", "shape", "dtype", "nan", "inf", "none"]), st.data())
def test_each_defect_gets_its_own_error(
    spec: dict[str, tuple[tuple[int, ...], Any]], defect: str, data: st.DataObject
) -> None:
    """Missing or extra tensors, a wrong shape or dtype, NaN or Inf: each raises its own class, naming the tensor."""
    tensors = {name: np.ones(shape, dtype) for name, (shape, dtype) in spec.items()}
    expected = {name: (shape, np.dtype(dtype).name) for name, (shape, dtype) in spec.items()}
    victim = data.draw(st.sampled_from(sorted(spec)))
    shape, dtype = spec[victim]
    if defect == "missing":
        del tensors[victim]
    elif defect == "extra":
        tensors[victim + "_extra"] = np.ones(2, np.float32)
    elif defect == "shape":
        other = data.draw(hnp.array_shapes(min_dims=0, max_dims=3, max_side=5).filter(lambda s: s != shape))
        tensors[victim] = np.ones(other, dtype)
    elif defect == "dtype":
        tensors[victim] = tensors[victim].astype(data.draw(st.sampled_from([d for d in DTYPES if d != dtype])))
    elif defect in ("nan", "inf"):
        assume(np.issubdtype(dtype, np.floating))
        flat = tensors[victim].reshape(-1)
        spots = data.draw(st.sets(st.integers(0, flat.size - 1), min_size=1))
        flat[sorted(spots)] = np.nan if defect == "nan" else -np.inf
    payload = dumps(tensors)
    if defect == "none":
        assert loaded_or_rejected(payload, expected) is not None
        return
    error = rejected(payload, expected, max_bytes=1 << 20)
    wanted = {"missing": WrongKeys, "extra": WrongKeys, "shape": WrongShape, "dtype": WrongDtype}
    assert isinstance(error, wanted.get(defect, NonFiniteValues)), error
    assert repr(victim if defect != "extra" else victim + "_extra") in str(error)
    if defect in ("nan", "inf"):
        count = f"{len(spots)} NaN and 0 infinite" if defect == "nan" else f"0 NaN and {len(spots)} infinite"
        assert count in str(error)


@FAST
@given(st.integers(0, 10_000))
def test_any_limit_below_the_size_is_too_large(limit: int) -> None:
    data = dumps(good())
    error = rejected(data, max_bytes=limit % len(data))
    assert isinstance(error, UpdateTooLarge) and f"{len(data)} bytes" in str(error)


def test_a_header_length_past_the_data_or_any_limit_is_rejected_unread() -> None:
    for n in [2**64 - 1, 2**63, 10**12, 101_000_000]:
        error = rejected(struct.pack("<Q", n) + b"{}", max_bytes=1 << 30)
        assert isinstance(error, NotSafetensors) and "does not fit" in str(error)


# ---------------------------------------------------------------------------- pickles that would run code


class TouchesMarker:
    """Unpickling this creates ``path``: proof that code ran."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, tuple[Path]]:
        return (Path.touch, (self.path,))


def payloads(marker: Path) -> dict[str, bytes]:
    """Files that run code when loaded the usual way (pickle, torch.load, numpy.load with allow_pickle)."""
    state = {"fc1.weight": TouchesMarker(marker), "fc1.bias": torch.zeros(4)}
    out = {f"pickle-protocol-{p}": pickle.dumps({"fc1.weight": TouchesMarker(marker)}, protocol=p) for p in (0, 2, 5)}
    for name, zipped in [("torch.save", True), ("torch.save-legacy", False)]:
        buf = io.BytesIO()
        torch.save(state, buf, _use_new_zipfile_serialization=zipped)
        out[name] = buf.getvalue()
    buf = io.BytesIO()
    np.save(buf, np.array([TouchesMarker(marker)], dtype=object), allow_pickle=True)
    out["numpy-object-array"] = buf.getvalue()
    return out


def run_the_usual_way(name: str, data: bytes) -> None:
    if name.startswith("pickle"):
        pickle.loads(data)  # on purpose: proves the payload is live
    elif name.startswith("torch"):
        torch.load(io.BytesIO(data), weights_only=False)
    else:
        np.load(io.BytesIO(data), allow_pickle=True)


PAYLOADS = sorted(payloads(Path("unused")))
HINTS = {"torch.save": "zip/torch.save", "numpy-object-array": "numpy .npy"}


@pytest.mark.parametrize("kind", PAYLOADS)
def test_live_pickle_payloads_are_rejected_without_running(
    kind: str, tmp_path: Path, store: ModelStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    control = tmp_path / "control"
    run_the_usual_way(kind, payloads(control)[kind])
    assert control.exists(), "the payload is not live: it must run code when loaded the usual way"

    marker = tmp_path / "marker"
    data = payloads(marker)[kind]
    cid = store.put_bytes(data)
    no_unpickling(monkeypatch)
    for framework in ["numpy", "torch"]:
        with pytest.raises(NotSafetensors, match="not a safetensors file") as info:
            ModelStore(store.client, framework=framework).get_tensors(cid, expected=SPEC, max_bytes=LIMIT)
        assert HINTS.get(kind, "pickle") in str(info.value)
    assert not marker.exists(), "loading the update ran the pickle's code"


def test_pickle_bytes_inside_a_valid_file_stay_bytes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A safetensors file carrying a pickle as a byte tensor (and one in its metadata) loads as data or is rejected
    for its dtype; it is never run."""
    marker = tmp_path / "marker"
    evil = pickle.dumps(TouchesMarker(marker))
    data = dumps({"fc1.weight": np.frombuffer(evil, np.uint8)}, {"note": evil.hex()})
    no_unpickling(monkeypatch)
    bundle = load_checked(data)
    assert bytes(bundle["fc1.weight"]) == evil and not marker.exists()
    assert isinstance(rejected(data), WrongKeys)
    assert isinstance(rejected(data, {"fc1.weight": ((len(evil),), "float32")}), WrongDtype)
    assert not marker.exists()


def no_unpickling(monkeypatch: pytest.MonkeyPatch) -> None:
    """Makes every unpickling entry point fail the test if it is called."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the update loader unpickled something")

    for module, name in [(pickle, "loads"), (pickle, "load"), (pickle, "Unpickler"), (torch, "load"), (np, "load")]:
        monkeypatch.setattr(module, name, refuse)


# ---------------------------------------------------------------------------- through IPFS, as the aggregator does


@pytest.fixture
def store(ipfs: IpfsClient) -> ModelStore:
    return ModelStore(ipfs, max_bytes=LIMIT)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.data())
def test_mangled_updates_fetched_from_ipfs_raise_storage_errors(store: ModelStore, data: st.DataObject) -> None:
    """The aggregator's call on a corrupted, truncated, padded or oversized update pinned to IPFS: a typed
    StorageError (the round goes on without it) or an update that passed every check."""
    payload = bytearray(dumps(good()))
    mangle = data.draw(st.sampled_from(["flip", "truncate", "pad", "oversize", "random"]))
    if mangle == "flip":
        payload[data.draw(st.integers(0, len(payload) - 1))] ^= data.draw(st.integers(1, 255))
    elif mangle == "truncate":
        payload = payload[: data.draw(st.integers(0, len(payload) - 1))]
    elif mangle == "pad":
        payload += data.draw(st.binary(min_size=1, max_size=32))
    elif mangle == "oversize":
        payload = bytearray(dumps({**good(), "pad": np.zeros(LIMIT // 4 + 1, np.float32)}))
    else:
        payload = bytearray(data.draw(st.binary(max_size=256)))
    cid = store.put_bytes(bytes(payload))
    try:
        bundle = store.get_tensors(cid, expected=SPEC, max_bytes=LIMIT)
    except StorageError as exc:
        assert mangle != "oversize" or isinstance(exc, ObjectTooLarge)
        assert 0 < len(str(exc)) <= MAX_MESSAGE
    else:
        assert mangle == "flip" and set(bundle) == set(SPEC)
