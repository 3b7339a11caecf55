"""Circuit setup, done once per circuit size and SRS and cached outside git: ONNX export, ezkl
settings, compiled circuit, SRS, proving and verifying keys, and the EVM verifier's artefacts.

:func:`setup` is the production build of :class:`~marketplace.rule.circuit.GramCircuit` and of the
row circuit of the same K (:func:`setup_row`, :class:`~marketplace.rule.row_circuit.RowCircuit`: a
trainer's proof that a row it publishes is its committed row); the steps (:func:`export_onnx`,
:func:`settings_for`, :func:`compile_circuit`, :func:`generate_keys`, :func:`evm_artifacts`) are
public so that the live circuit's tests and the research prototype (``research/zk_prototype``)
build exactly the same way.

The cache (:func:`cache_dir`: ``.cache/zk/``, ``MARKETPLACE_ZK_CACHE`` overrides it) holds one
folder per SRS, and in it one folder per circuit::

    .cache/zk/dev-srs/gram-n{N}-k{K}/     keys made with a development SRS generated here
    .cache/zk/dev-srs/row-k{K}/
    .cache/zk/srs-{sha256[:16]}/gram-n{N}-k{K}/   keys made with the SRS file of that sha256
    .cache/zk/srs-{sha256[:16]}/row-k{K}/

(``gram-n{N}-k{K}`` is the circuit in its size's layout, :func:`gram_folder`; a layout chosen by
hand, e.g. TopK sorts at N = 8 for a test, gets ``gram-n{N}-k{K}-{sort}{cols}``.) A round circuit's
folder also holds, from its first use, ezkl's circuit-specific verifier of its keys and that verifier
split in two contracts (``dedicated/``, :mod:`marketplace.adapters.ezkl.dedicated`): they change with
the keys and go with them.

Keys are keyed by the SRS (:func:`srs_id`: the SHA-256 of the SRS file, or :data:`DEV_SRS`) and by
a fingerprint of the circuits' code (:data:`marketplace.rule.CIRCUIT_VERSION`: not the rule's parts
that no circuit reads, such as the model step), the circuit size and layout (sort and inner columns),
the ezkl version and that SRS identity, so keys made with one SRS are never returned for another and
a changed circuit is rebuilt, never silently reused. A circuit is
built in a temporary folder next to its place and moved there when complete: a reader never sees
half-built keys.

Keys must be those a deployed verifier registered: :func:`find_keys` and :func:`find_row_keys`
look through every SRS's keys for the ones whose VKA is a given VKA.

WARNING: without ``srs`` the structured reference string is generated locally with
``ezkl.gen_srs``; whoever generated it knows its secret and could forge proofs. That is fine for
development and tests only. A production deployment must pass a ceremony SRS (e.g. from the
perpetual powers-of-tau) of at least the circuit's logrows.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import ezkl
import torch
from torch import nn

from marketplace.adapters.toolchain import install_svm_solc, project_root
from marketplace.protocol.constants import SCALE
from marketplace.rule import CIRCUIT_VERSION
from marketplace.rule.circuit import CIRCUIT_LAYOUTS, CircuitLayout, GramCircuit, layout_for
from marketplace.rule.row_circuit import ROW_DECOMP_BASE, ROW_DECOMP_LEGS, RowCircuit

#: The SRS identity (:func:`srs_id`) of keys made with a development SRS generated on this machine
#: (``ezkl.gen_srs``, a fresh random secret each time: insecure, and no other machine can make the
#: same keys).
DEV_SRS = "dev"
#: The cache folder of the keys made with a development SRS.
DEV_SRS_DIR = "dev-srs"
#: Name of the file, in a circuit's folder, holding the SRS identity it was made with.
SRS_ID_FILE = "srs_id"
#: Rows kept free for Halo2's blinding when choosing logrows (ezkl reserves 8; a margin).
BLINDING_ROWS = 64


@dataclass(frozen=True)
class CircuitKeys:
    """Paths of one circuit's cached artefacts; ``srs_id`` names the SRS they were made with
    (:func:`srs_id`: :data:`DEV_SRS` or the SRS file's SHA-256)."""

    n: int
    k: int
    root: Path
    srs_id: str = DEV_SRS

    @property
    def size(self) -> str:
        """``"{n}x{k}"``, the size as ``marketplace zk setup --size`` takes it."""
        return f"{self.n}x{self.k}"

    @property
    def development_srs(self) -> bool:
        """Whether the keys were made with a development SRS (see the module warning)."""
        return self.srs_id == DEV_SRS

    @property
    def srs_sha256(self) -> str:
        """SHA-256 (hex) of the SRS file the keys were made with (for a development SRS, of the one
        generated here)."""
        return self.srs_id if not self.development_srs else sha256_file(self.srs)

    @property
    def onnx(self) -> Path:
        return self.root / "network.onnx"

    @property
    def settings(self) -> Path:
        return self.root / "settings.json"

    @property
    def compiled(self) -> Path:
        return self.root / "network.ezkl"

    @property
    def pk(self) -> Path:
        return self.root / "pk.key"

    @property
    def vk(self) -> Path:
        return self.root / "vk.key"

    @property
    def srs(self) -> Path:
        return self.root / "kzg.srs"

    @property
    def sol_dir(self) -> Path:
        return self.root / "sol"

    @property
    def vka(self) -> Path:
        return self.root / "vka.bin"

    @property
    def logrows(self) -> int:
        return int(json.loads(self.settings.read_text())["run_args"]["logrows"])

    def vka_words(self) -> list[bytes]:
        """The VKA words: ``create_evm_vka`` writes a little-endian u64 count, then 32-byte words."""
        raw = self.vka.read_bytes()
        count = int.from_bytes(raw[:8], "little")
        if len(raw) != 8 + 32 * count:
            raise ValueError(f"unexpected VKA file size {len(raw)} for {count} words")
        return [raw[8 + 32 * i : 8 + 32 * (i + 1)] for i in range(count)]


@dataclass(frozen=True)
class RowKeys(CircuitKeys):
    """Paths of the row circuit's cached artefacts (:func:`setup_row`); ``n`` is 1 (one row)."""


KeysT = TypeVar("KeysT", bound=CircuitKeys)

#: Circuit sizes offered (trainer slots -> sketch width K): those of the rule's layout table
#: (:data:`marketplace.rule.circuit.CIRCUIT_LAYOUTS`, which also fixes each size's sort and inner
#: columns), chosen so that a round proves within issue 16's targets on 2 cores (see bench/zk.py):
#: 64-wide sketches up to 8 trainers, 32-wide above, up to 64 trainers.
CIRCUIT_SIZES: dict[int, int] = {n: layout.k for n, layout in CIRCUIT_LAYOUTS.items()}


def circuit_for(trainers: int) -> tuple[int, int]:
    """(slots N, sketch width K) of the smallest offered circuit for ``trainers`` trainers."""
    for n, k in sorted(CIRCUIT_SIZES.items()):
        if trainers <= n:
            return n, k
    raise ValueError(f"no circuit for {trainers} trainers (at most {max(CIRCUIT_SIZES)})")


def cache_dir() -> Path:
    """The parent of the cached keys: ``MARKETPLACE_ZK_CACHE`` if set, else ``<project root>/.cache/zk``."""
    env = os.environ.get("MARKETPLACE_ZK_CACHE")
    return Path(env) if env else project_root() / ".cache" / "zk"


def sha256_file(path: Path) -> str:
    """SHA-256 (hex) of the file at ``path``, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def srs_id(srs: Path | None) -> str:
    """The identity keys made with the SRS file ``srs`` are cached under: its SHA-256 (hex); for
    ``None`` (a development SRS generated at setup) :data:`DEV_SRS`."""
    return DEV_SRS if srs is None else sha256_file(srs)


def srs_dir(srs: str, root: Path | None = None) -> Path:
    """The cache folder of the keys made with the SRS of identity ``srs`` (:func:`srs_id`), under
    ``root`` (default :func:`cache_dir`): ``dev-srs`` or ``srs-{first 16 hex digits}``."""
    name = DEV_SRS_DIR if srs == DEV_SRS else f"srs-{srs[:16]}"
    return (root or cache_dir()) / name


def fingerprint(
    n: int, k: int, circuit_version: str = CIRCUIT_VERSION, *, srs: str = DEV_SRS, layout: CircuitLayout | None = None
) -> str:
    """Changes whenever the circuits' code (:data:`marketplace.rule.CIRCUIT_VERSION`: the circuit, what it
    imports from the rule's folder and the protocol, among them its constants, the committed rows and the
    layout table), the circuit's size, its layout
    (``layout``, default :func:`~marketplace.rule.circuit.layout_for` ``(n)``: the sort and the inner
    columns, named here too so that a layout chosen by hand is never taken for the size's own), the
    ezkl version or the SRS (``srs``: :func:`srs_id`) changes."""
    lay = layout or layout_for(n)
    text = f"{n}/{k}/{lay.sort}/{lay.cols}/{ezkl.__version__}/{circuit_version}/{srs}"
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def row_fingerprint(k: int, circuit_version: str = CIRCUIT_VERSION, *, srs: str = DEV_SRS) -> str:
    """:func:`fingerprint` of the row circuit of width ``k`` (the rule's folder holds the row circuit
    and its decomposition constants, so :data:`~marketplace.rule.CIRCUIT_VERSION` covers them)."""
    return hashlib.sha256(f"row/{k}/{ezkl.__version__}/{circuit_version}/{srs}".encode()).hexdigest()[:16]


def run_args(logrows: int | None = None, cols: int = 2, legs: int = 2, base: int | None = None) -> ezkl.PyRunArgs:
    """Hashed inputs (one Poseidon hash per input: per trainer slot, and the tag), fixed params,
    public outputs, scale 2**13,
    ``cols`` inner columns (2 measured fastest here), ``legs`` decomposition legs and, if given,
    the decomposition ``base`` (ezkl's default otherwise)."""
    ra = ezkl.PyRunArgs()
    ra.input_visibility = "hashed"
    ra.param_visibility = "fixed"
    ra.output_visibility = "public"
    ra.input_scale = SCALE
    ra.param_scale = SCALE
    ra.num_inner_cols = cols
    ra.decomp_legs = legs
    if base is not None:
        ra.decomp_base = base
    if logrows is not None:
        ra.logrows = logrows
    return ra


def gram_folder(n: int, k: int, layout: CircuitLayout | None = None) -> str:
    """The cache folder name of the ``n`` x ``k`` round circuit: ``gram-n{n}-k{k}`` in the size's own
    layout (:func:`~marketplace.rule.circuit.layout_for`), ``gram-n{n}-k{k}-{sort}{cols}`` in another."""
    lay = layout or layout_for(n)
    own = layout_for(n)
    suffix = "" if (lay.sort, lay.cols) == (own.sort, own.cols) else f"-{lay.sort}{lay.cols}"
    return f"gram-n{n}-k{k}{suffix}"


def setup(
    n: int, k: int, *, srs: Path | None = None, root: Path | None = None, layout: CircuitLayout | None = None
) -> CircuitKeys:
    """Builds (or reuses) everything needed to prove and verify rounds of ``n`` trainers with
    ``k``-wide sketches, made with the SRS file ``srs`` (a ceremony SRS of at least the circuit's
    logrows; None: a development SRS generated here, see the module warning), and the row circuit
    of width ``k`` with the same SRS (:func:`setup_row`: the verifier adapter registers both).

    The circuit is :class:`~marketplace.rule.circuit.GramCircuit` with the sort and inner columns of
    ``layout`` (default: the size's, :func:`~marketplace.rule.circuit.layout_for`; its ``k`` is not
    read). The keys live in ``srs_dir(srs_id(srs), root) / gram_folder(n, k, layout)`` (``root``
    default :func:`cache_dir`). Idempotent: keys made with this SRS, rule, layout and ezkl version
    are reused; keys made with any other SRS are never returned (they are in another folder, and
    the folder's fingerprint covers the SRS); a stale folder is rebuilt from scratch."""
    lay = layout or layout_for(n)
    ident = srs_id(srs)
    _setup_row(k, srs, ident, root)
    keys = CircuitKeys(n, k, srs_dir(ident, root) / gram_folder(n, k, lay), ident)

    def build(into: CircuitKeys) -> None:
        export_onnx(GramCircuit(n, k, sort=lay.sort), n, k + 2, into.onnx, tag_width=GramCircuit.tag_width)
        settings_for(into.onnx, into.settings, cols=lay.cols)
        compile_circuit(into.onnx, into.compiled, into.settings)
        generate_keys(into, srs)
        evm_artifacts(into)

    return _cached(keys, fingerprint(n, k, srs=ident, layout=lay), build)


def setup_row(k: int, *, srs: Path | None = None, root: Path | None = None) -> RowKeys:
    """Builds (or reuses) the row circuit of width ``k`` (:class:`~marketplace.rule.row_circuit.RowCircuit`:
    hashed input, public output, scale 2**13, the decomposition base and legs of its module, the
    smallest logrows that holds it) and its keys and VKA, in ``srs_dir(srs_id(srs), root) / f"row-k{k}"``.
    ``srs``: a ceremony SRS of at least its logrows (the round circuit's serves: ezkl downsizes it);
    without it a development SRS is generated (see the module warning). Idempotent and keyed by the
    SRS as :func:`setup` is."""
    return _setup_row(k, srs, srs_id(srs), root)


def _setup_row(k: int, srs: Path | None, ident: str, root: Path | None) -> RowKeys:
    """:func:`setup_row` with the SRS's identity already computed (``ident == srs_id(srs)``)."""
    keys = RowKeys(1, k, srs_dir(ident, root) / f"row-k{k}", ident)

    def build(into: CircuitKeys) -> None:
        circuit = RowCircuit(k)
        export_onnx(circuit, 1, circuit.width, into.onnx, inputs=("row",), outputs=("row_out",))
        settings_for(into.onnx, into.settings, legs=ROW_DECOMP_LEGS, base=ROW_DECOMP_BASE)
        compile_circuit(into.onnx, into.compiled, into.settings)
        generate_keys(into, srs)
        evm_artifacts(into)

    return _cached(keys, row_fingerprint(k, srs=ident), build)


def row_keys_for(keys: CircuitKeys) -> RowKeys:
    """The row circuit of ``keys``' K made with the same SRS as ``keys`` (the round circuit's), in the
    same cache (:func:`setup` builds it; set up again here if it went missing). For a development SRS
    these are the development keys of the same cache; for a ceremony SRS, the keys of its SHA-256."""
    root = keys.root.parent.parent
    if keys.development_srs:
        return _setup_row(keys.k, None, DEV_SRS, root)
    return _setup_row(keys.k, keys.srs, keys.srs_id, root)  # keys.srs is a copy of that SRS file


def _cached(keys: KeysT, stamp: str, build: Callable[[CircuitKeys], None]) -> KeysT:
    """``keys`` if their folder is complete and stamped ``stamp``; else built by ``build`` (given the
    paths of a fresh temporary folder next to ``keys.root``) and moved into place."""
    if _complete(keys, stamp):
        return keys
    keys.root.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{keys.root.name}.", dir=keys.root.parent))
    tmp.chmod(0o755)  # mkdtemp's 0700 would hide the keys from the other users of a shared cache
    try:
        build(CircuitKeys(keys.n, keys.k, tmp, keys.srs_id))
        (tmp / SRS_ID_FILE).write_text(keys.srs_id)
        (tmp / "fingerprint").write_text(stamp)
        if keys.root.exists() and not _complete(keys, stamp):
            shutil.rmtree(keys.root)
        try:
            tmp.rename(keys.root)
        except OSError:  # another process put complete keys there meanwhile
            if not _complete(keys, stamp):
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    return keys


def _complete(keys: CircuitKeys, stamp: str) -> bool:
    """Whether ``keys.root`` holds finished keys stamped ``stamp`` (made with ``keys.srs_id``)."""
    stamped = keys.root / "fingerprint"
    return stamped.is_file() and stamped.read_text() == stamp and keys.vka.is_file()


def cached_keys(n: int, k: int, *, root: Path | None = None) -> list[CircuitKeys]:
    """Every complete, current set of keys of the ``n`` x ``k`` round circuit in the cache (``root``,
    default :func:`cache_dir`), one per SRS it was set up with (development SRS first)."""
    found = _cached_in(root, gram_folder(n, k), lambda ident: fingerprint(n, k, srs=ident))
    return [CircuitKeys(n, k, folder, ident) for folder, ident in found]


def cached_row_keys(k: int, *, root: Path | None = None) -> list[RowKeys]:
    """:func:`cached_keys` of the row circuit of width ``k``."""
    found = _cached_in(root, f"row-k{k}", lambda ident: row_fingerprint(k, srs=ident))
    return [RowKeys(1, k, folder, ident) for folder, ident in found]


def _cached_in(root: Path | None, name: str, stamp: Callable[[str], str]) -> list[tuple[Path, str]]:
    """(folder, SRS identity) of the complete keys in ``<root>/<SRS folder>/<name>`` (development SRS
    first, then by folder name): those whose recorded SRS identity belongs in that SRS folder and
    whose fingerprint is ``stamp(identity)``."""
    parent = root or cache_dir()
    found = []
    for srs_folder in [parent / DEV_SRS_DIR, *sorted(parent.glob("srs-*"))]:
        folder = srs_folder / name
        ident_file = folder / SRS_ID_FILE
        if not ident_file.is_file():
            continue
        ident = ident_file.read_text().strip()
        if srs_dir(ident, parent) == srs_folder and _complete(CircuitKeys(0, 0, folder, ident), stamp(ident)):
            found.append((folder, ident))
    return found


def find_keys(n: int, k: int, vka: list[bytes], *, root: Path | None = None) -> CircuitKeys | None:
    """The cached keys of the ``n`` x ``k`` round circuit whose VKA is ``vka`` (the words a deployed
    ``EzklRoundVerifier`` registered: ``vka()``), whatever SRS they were made with; None if none are."""
    return next((keys for keys in cached_keys(n, k, root=root) if keys.vka_words() == vka), None)


def find_row_keys(k: int, row_vka: list[bytes], *, root: Path | None = None) -> RowKeys | None:
    """The cached row-circuit keys of width ``k`` whose VKA is ``row_vka`` (``rowVka()``); None if none are."""
    return next((keys for keys in cached_row_keys(k, root=root) if keys.vka_words() == row_vka), None)


def export_onnx(
    module: nn.Module,
    n: int,
    width: int,
    path: Path,
    *,
    tag_width: int = 0,
    reference: bool | None = None,
    inputs: tuple[str, ...] | None = None,
    outputs: tuple[str, ...] = ("flags", "scores"),
) -> None:
    """ONNX of a circuit module taking ``n`` inputs ``row0..row{n-1}`` (or the names ``inputs``) of
    shape (1, ``width``) and returning ``outputs`` (default ``(flags, scores)``): opset 17, the
    TorchScript exporter (``dynamo=False``), eval mode.
    With ``reference`` (default: the module's ``takes_reference`` attribute, False if it has none), the
    module takes one more input ``reference`` of shape (1, ``width``) after them (the owner's
    reference row of :class:`~marketplace.rule.circuit.GramCircuit`).
    With ``tag_width``, the module takes one more input ``tag`` of shape (1, ``tag_width``), last, and
    returns it as one more output (the round tag of :class:`~marketplace.rule.circuit.GramCircuit`)."""
    if inputs is not None and len(inputs) != n:
        raise ValueError(f"{len(inputs)} input names for {n} inputs")
    names = list(inputs) if inputs is not None else [f"row{i}" for i in range(n)]
    if reference is None:
        reference = bool(getattr(module, "takes_reference", False))
    names += ["reference"] if reference else []
    zeros = [torch.zeros(1, width) for _ in range(n + int(reference))]
    zeros += [torch.zeros(1, tag_width)] if tag_width else []
    torch.onnx.export(
        module.eval(),
        tuple(zeros),
        str(path),
        dynamo=False,
        opset_version=17,
        input_names=names + (["tag"] if tag_width else []),
        output_names=list(outputs) + (["tag_out"] if tag_width else []),
    )


def settings_for(
    onnx: Path, settings: Path, *, logrows: int | None = None, cols: int = 2, legs: int = 2, base: int | None = None
) -> dict[str, Any]:
    """Writes the ezkl settings of the circuit ``onnx`` (:func:`run_args` with ``cols``, ``legs``,
    ``base``) to ``settings`` and returns them.

    Without ``logrows``: the smallest logrows (:func:`smallest_logrows`) that holds the circuit's rows
    in its ``cols`` inner columns (ezkl's own choice can be lower, overflowing into more columns),
    its shuffle and dynamic-lookup columns (ezkl's ``total_shuffle_col_size +
    total_dynamic_col_size``: TopK sorts put their shuffled cells there), each with the blinding
    rows, and its range-check table (ezkl's default sizes the table for a lookup range this circuit
    does not use, which made a 4-trainer circuit k=17 instead of k=15: 4x the proving time and an
    SRS 4x as large); a circuit that needs lookups keeps ezkl's choice. With ``logrows``: ezkl's
    settings at it.
    """
    if not ezkl.gen_settings(str(onnx), str(settings), py_run_args=run_args(logrows, cols, legs, base)):
        raise RuntimeError("ezkl gen_settings failed")
    out: dict[str, Any] = json.loads(settings.read_text())
    if logrows is not None or out.get("required_lookups"):
        return out
    smallest = smallest_logrows(out)
    if smallest == out["run_args"]["logrows"]:
        return out
    if not ezkl.gen_settings(str(onnx), str(settings), py_run_args=run_args(smallest, cols, legs, base)):
        raise RuntimeError(f"ezkl gen_settings failed at logrows {smallest}")
    return dict(json.loads(settings.read_text()))


def smallest_logrows(settings: dict[str, Any]) -> int:
    """The smallest logrows that holds what ezkl's ``settings`` describe: the rows, and the shuffle
    and dynamic-lookup columns, each plus 64 rows for blinding (ezkl reserves fewer), and a range
    table of ``max + 1`` entries (one more bit than ``max``)."""
    ranges = [hi for _, hi in settings.get("required_range_checks", [])] or [0]
    columns = int(settings.get("total_shuffle_col_size", 0)) + int(settings.get("total_dynamic_col_size", 0))
    return max(
        (int(settings["num_rows"]) + BLINDING_ROWS).bit_length(),
        (columns + BLINDING_ROWS).bit_length(),
        max(ranges).bit_length() + 1,
    )


def compile_circuit(onnx: Path, compiled: Path, settings: Path) -> None:
    """ezkl's compiled circuit of ``onnx`` under ``settings``."""
    if not ezkl.compile_circuit(str(onnx), str(compiled), str(settings)):
        raise RuntimeError("ezkl compile_circuit failed")


def generate_keys(keys: CircuitKeys, srs: Path | None = None) -> None:
    """The SRS (a copy of ``srs``; without it generated locally, development only: see the module
    warning) and the proving and verifying keys of ``keys.compiled``."""
    if srs is not None:
        shutil.copyfile(srs, keys.srs)
    else:
        ezkl.gen_srs(str(keys.srs), keys.logrows)
    if not ezkl.setup(str(keys.compiled), str(keys.vk), str(keys.pk), srs_path=str(keys.srs)):
        raise RuntimeError("ezkl setup failed")


def evm_artifacts(keys: CircuitKeys) -> None:
    """The reusable Halo2 verifier's Solidity (the same for every circuit) and this circuit's VKA."""
    install_svm_solc()  # ezkl's create_evm_verifier looks for solc 0.8.20 under ~/.svm
    keys.sol_dir.mkdir(exist_ok=True)

    async def generate() -> None:  # ezkl's futures need a running event loop when created
        await ezkl.create_evm_verifier(
            str(keys.vk), str(keys.settings), str(keys.sol_dir / "Halo2VerifierReusable.sol"),
            str(keys.root / "verifier_abi.json"), srs_path=str(keys.srs), reusable=True,
        )  # fmt: skip
        await ezkl.create_evm_vka(str(keys.vk), str(keys.settings), str(keys.vka), srs_path=str(keys.srs))

    asyncio.run(generate())
