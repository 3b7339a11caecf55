"""Model weights and updates as ``safetensors`` bytes, and their checked loading.

safetensors is a JSON header plus raw little-endian arrays: loading it runs no code, unlike
pickle (``torch.save``), so a trainer cannot run code on the aggregator. :func:`load_checked`
parses and checks the header itself before any tensor is decoded, then checks the values.
"""

from __future__ import annotations

import json
import math
import struct
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from marketplace.adapters.ipfs.errors import (
    NonFiniteValues,
    NotSafetensors,
    UpdateTooLarge,
    WrongDtype,
    WrongKeys,
    WrongShape,
)
from marketplace.protocol.safejson import loads_bounded

DEFAULT_MAX_BYTES = 256 << 20
MAX_HEADER_BYTES = 100_000_000  # safetensors' own limit
MAX_HEADER_DEPTH = 8

DTYPE_SIZES: dict[str, int] = {
    "BOOL": 1, "U8": 1, "I8": 1, "F8_E5M2": 1, "F8_E4M3": 1,
    "U16": 2, "I16": 2, "F16": 2, "BF16": 2,
    "U32": 4, "I32": 4, "F32": 4,
    "U64": 8, "I64": 8, "F64": 8,
}  # fmt: skip
_FLOAT_CODES = {"F16", "BF16", "F32", "F64", "F8_E5M2", "F8_E4M3"}
_NUMPY_UNSUPPORTED = {"BF16", "F8_E5M2", "F8_E4M3"}
_NAME_TO_CODE = {
    "bool": "BOOL", "uint8": "U8", "int8": "I8", "uint16": "U16", "int16": "I16", "float16": "F16",
    "bfloat16": "BF16", "uint32": "U32", "int32": "I32", "float32": "F32", "uint64": "U64",
    "int64": "I64", "float64": "F64", "float8_e5m2": "F8_E5M2", "float8_e4m3fn": "F8_E4M3",
}  # fmt: skip

TensorLike = Any  # numpy.ndarray or torch.Tensor
Expected = Mapping[str, tuple[Sequence[int], Any]]


def _cut(text: str, limit: int = 80) -> str:
    """``text`` cut to ``limit`` characters: names, shapes and parser messages come from the (untrusted) file."""
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _shown(value: object, limit: int = 80) -> str:
    return _cut(repr(value), limit)


def dtype_code(dtype: Any) -> str:
    """safetensors' dtype code (``"F32"``) of a numpy dtype, a torch dtype or a name."""
    if isinstance(dtype, str) and dtype.upper() in DTYPE_SIZES:
        return dtype.upper()
    name = str(dtype).removeprefix("torch.")
    if name in _NAME_TO_CODE:
        return _NAME_TO_CODE[name]
    try:
        return _NAME_TO_CODE[np.dtype(dtype).name]
    except (TypeError, KeyError) as exc:
        raise ValueError(f"dtype {dtype!r} has no safetensors equivalent") from exc


class TensorBundle(Mapping[str, TensorLike]):
    """Tensors read from a checked safetensors object, with its metadata (and CID once fetched).

    It is a read-only mapping of tensor name to array, so it can be used where a
    ``dict[str, ndarray]`` is expected.
    """

    def __init__(
        self, tensors: dict[str, TensorLike], metadata: dict[str, str], nbytes: int, cid: str | None = None
    ) -> None:
        self.tensors = tensors
        self.metadata = metadata
        self.nbytes = nbytes
        self.cid = cid

    def __getitem__(self, key: str) -> TensorLike:
        return self.tensors[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.tensors)

    def __len__(self) -> int:
        return len(self.tensors)

    def __repr__(self) -> str:
        shapes = {k: tuple(v.shape) for k, v in self.tensors.items()}
        return f"TensorBundle(cid={self.cid!r}, tensors={shapes}, metadata={self.metadata})"


def dumps(tensors: Mapping[str, TensorLike], metadata: Mapping[str, Any] | None = None) -> bytes:
    """Serialize numpy arrays and/or torch tensors to safetensors bytes.

    ``metadata`` goes in the header's ``__metadata__``; values are stored as strings.
    """
    meta = {str(k): v if isinstance(v, str) else json.dumps(v) for k, v in (metadata or {}).items()}
    if tensors and all(type(t).__module__.startswith("torch") for t in tensors.values()):
        from safetensors.torch import save as torch_save

        raw = torch_save({k: t.detach().cpu().contiguous() for k, t in tensors.items()}, metadata=meta)
        return _canonical_header(raw)
    from safetensors.numpy import save as numpy_save

    arrays = {}
    for key, value in tensors.items():
        if type(value).__module__.startswith("torch"):
            value = value.detach().cpu().numpy()
        arrays[key] = np.asarray(value, order="C")  # (ascontiguousarray makes 0-d arrays 1-d)
    # (safetensors writes the invalid header `{},"__metadata__":{}}` for no tensors and empty metadata)
    return _canonical_header(numpy_save(arrays, metadata=meta if arrays or meta else None))


def _canonical_header(data: bytes) -> bytes:
    """Rewrite the header with sorted keys, so the same tensors and metadata always give the same
    bytes (and so the same CID): safetensors writes ``__metadata__`` in hash-map order."""
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + n])
    canonical = json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
    if len(canonical) > n:  # cannot happen for the same content; keep the library's bytes
        return data
    return data[:8] + canonical + b" " * (n - len(canonical)) + data[8 + n :]


def read_header(data: bytes, max_bytes: int = DEFAULT_MAX_BYTES) -> tuple[dict[str, dict[str, Any]], dict[str, str]]:
    """Parse and validate a safetensors header: ``({name: {dtype, shape, data_offsets}}, metadata)``.

    Raises :class:`UpdateTooLarge` or :class:`NotSafetensors` with the reason.
    """
    if len(data) > max_bytes:
        raise UpdateTooLarge(f"update is {len(data)} bytes, over the limit of {max_bytes}")
    if len(data) < 8:
        raise NotSafetensors(f"not a safetensors file: {len(data)} bytes is shorter than the 8-byte header length")
    (n,) = struct.unpack("<Q", data[:8])
    if n > min(len(data) - 8, MAX_HEADER_BYTES):
        hint = " (this looks like a pickle)" if data[:1] == b"\x80" or data[-1:] == b"." else ""  # PROTO or STOP
        hint = " (this looks like a zip/torch.save file)" if data[:2] == b"PK" else hint
        hint = " (this looks like a numpy .npy file)" if data[:6] == b"\x93NUMPY" else hint
        raise NotSafetensors(f"not a safetensors file: header length {n} does not fit in {len(data)} bytes{hint}")

    def no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        keys = [k for k, _ in pairs]
        if len(set(keys)) != len(keys):
            raise NotSafetensors("not a safetensors file: duplicate key in header")
        return dict(pairs)

    try:  # (a header nests three levels: {name: {"shape": [...]}}; deeper could crash json.loads)
        header = loads_bounded(data[8 : 8 + n].decode("utf-8"), MAX_HEADER_DEPTH, object_pairs_hook=no_duplicates)
    except (UnicodeDecodeError, ValueError) as exc:
        raise NotSafetensors(f"not a safetensors file: header is not JSON ({_cut(str(exc))})") from exc
    except RecursionError:
        raise NotSafetensors("not a safetensors file: header JSON is nested too deeply") from None
    if not isinstance(header, dict):
        raise NotSafetensors("not a safetensors file: header is not a JSON object")
    metadata = header.pop("__metadata__", None) or {}
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise NotSafetensors("not a safetensors file: __metadata__ must map strings to strings")
    buffer_len = len(data) - 8 - n
    spans = []
    for name, info in header.items():
        if not isinstance(info, dict) or set(info) != {"dtype", "shape", "data_offsets"}:
            raise NotSafetensors(f"not a safetensors file: bad entry for tensor {_shown(name)}")
        dtype, shape, offsets = info["dtype"], info["shape"], info["data_offsets"]
        if not isinstance(dtype, str) or dtype not in DTYPE_SIZES:
            raise NotSafetensors(f"tensor {_shown(name)}: unknown dtype {_shown(dtype)}")
        if not isinstance(shape, list) or not all(type(d) is int and d >= 0 for d in shape):  # (not bool)
            raise NotSafetensors(f"tensor {_shown(name)}: bad shape {_shown(shape)}")
        if not (isinstance(offsets, list) and len(offsets) == 2 and all(type(o) is int for o in offsets)):
            raise NotSafetensors(f"tensor {_shown(name)}: bad data_offsets {_shown(offsets)}")
        begin, end = offsets
        if not 0 <= begin <= end <= buffer_len or end - begin != math.prod(shape) * DTYPE_SIZES[dtype]:
            raise NotSafetensors(
                f"tensor {_shown(name)}: data_offsets {_shown(offsets)} do not match shape {_shown(shape)} {dtype}"
            )
        spans.append((begin, end))
    covered = 0
    for begin, end in sorted(spans):
        if begin != covered:
            raise NotSafetensors("not a safetensors file: tensor data overlaps or leaves gaps")
        covered = end
    if covered != buffer_len:
        raise NotSafetensors(f"not a safetensors file: {buffer_len - covered} trailing bytes after the tensors")
    return header, dict(metadata)


#: The largest header :func:`read_metadata` reads (a model's header is a few hundred bytes per tensor).
MAX_METADATA_HEADER_BYTES = 128 * 1024


def read_metadata(prefix: bytes, max_header_bytes: int = MAX_METADATA_HEADER_BYTES) -> dict[str, str]:
    """The ``__metadata__`` of a safetensors file from its first bytes (``prefix``: the 8-byte header length and
    at least the whole header; the tensors are not needed). :class:`NotSafetensors` when the header is longer
    than ``max_header_bytes`` or than ``prefix`` holds, is not a JSON object nested at most
    :data:`MAX_HEADER_DEPTH` levels, or its metadata does not map strings to strings."""
    if len(prefix) < 8:
        raise NotSafetensors(f"not a safetensors file: {len(prefix)} bytes is shorter than the 8-byte header length")
    (n,) = struct.unpack("<Q", prefix[:8])
    if n > max_header_bytes:
        raise NotSafetensors(f"the header is {n:,} bytes, more than the {max_header_bytes:,} read for its metadata")
    if 8 + n > len(prefix):
        raise NotSafetensors(f"not a safetensors file: header length {n} does not fit in {len(prefix)} bytes")
    try:
        header = loads_bounded(prefix[8 : 8 + n].decode("utf-8"), MAX_HEADER_DEPTH)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise NotSafetensors(f"not a safetensors file: header is not JSON ({_cut(str(exc))})") from exc
    if not isinstance(header, dict):
        raise NotSafetensors("not a safetensors file: header is not a JSON object")
    metadata = header.get("__metadata__") or {}
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise NotSafetensors("not a safetensors file: __metadata__ must map strings to strings")
    return dict(metadata)


def _check_expected(header: Mapping[str, Mapping[str, Any]], expected: Expected) -> None:
    missing = sorted(set(expected) - set(header))
    extra = sorted(set(header) - set(expected))
    if missing or extra:
        names = f"missing {_shown(missing, 200)}, unexpected {_shown(extra, 200)}"
        raise WrongKeys(f"update has wrong tensor names: {names}")
    for name, (shape, dtype) in expected.items():
        got_shape, want_shape = tuple(header[name]["shape"]), tuple(int(d) for d in shape)
        if got_shape != want_shape:
            raise WrongShape(f"tensor {name!r} has shape {_shown(got_shape)}, expected {want_shape}")
        got, want = header[name]["dtype"], dtype_code(dtype)
        if got != want:
            raise WrongDtype(f"tensor {name!r} has dtype {got}, expected {want}")


def load_checked(
    data: bytes,
    expected: Expected | None = None,
    max_bytes: int = DEFAULT_MAX_BYTES,
    *,
    framework: str = "numpy",
    allow_non_finite: bool = False,
) -> TensorBundle:
    """Load safetensors bytes after checking them; raise an :class:`InvalidUpdate` subclass if bad.

    Checks, in order: size (:class:`UpdateTooLarge`), header well-formed (:class:`NotSafetensors`,
    e.g. a pickle), names (:class:`WrongKeys`), shapes (:class:`WrongShape`) and dtypes
    (:class:`WrongDtype`) against ``expected`` (``{name: (shape, dtype)}``, dtype as numpy/torch
    dtype or name), then values (:class:`NonFiniteValues` for NaN/Inf in float tensors).
    ``framework`` is ``"numpy"`` (arrays) or ``"torch"`` (tensors; needed for bfloat16).
    """
    data = bytes(data)
    header, metadata = read_header(data, max_bytes)
    if expected is not None:
        _check_expected(header, expected)
    if framework == "numpy":
        odd = sorted(k for k, v in header.items() if v["dtype"] in _NUMPY_UNSUPPORTED)
        if odd:
            raise WrongDtype(f"tensors {_shown(odd, 200)} have a dtype numpy cannot hold; load with framework='torch'")
        from safetensors.numpy import load as backend_load
    elif framework == "torch":
        from safetensors.torch import load as backend_load
    else:
        raise ValueError(f"framework must be 'numpy' or 'torch', not {framework!r}")
    try:
        tensors = dict(backend_load(data))
    except Exception as exc:  # safetensors' own parser is the last word on well-formedness
        raise NotSafetensors(f"not a safetensors file: {_cut(str(exc))}") from exc
    if not allow_non_finite:
        for name, info in header.items():
            if info["dtype"] in _FLOAT_CODES:
                _check_finite(name, tensors[name])
    return TensorBundle(tensors, metadata, len(data))


def _check_finite(name: str, value: TensorLike) -> None:
    if isinstance(value, np.ndarray):
        bad = int(value.size - np.count_nonzero(np.isfinite(value)))
        nan = int(np.count_nonzero(np.isnan(value))) if bad else 0
    else:
        import torch

        bad = int(value.numel() - torch.isfinite(value).sum().item())
        nan = int(torch.isnan(value).sum().item()) if bad else 0
    if bad:
        raise NonFiniteValues(f"tensor {_shown(name)} has {nan} NaN and {bad - nan} infinite values")
