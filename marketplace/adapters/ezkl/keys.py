"""Circuit setup, done once per circuit size and cached outside git: ONNX export, ezkl settings,
compiled circuit, SRS, proving and verifying keys, and the EVM verifier's artefacts.

:func:`setup` is the production build of :class:`~marketplace.rule.circuit.GramCircuit` and of the
row circuit of the same K (:func:`setup_row`, :class:`~marketplace.rule.row_circuit.RowCircuit`: a
trainer's proof that a row it publishes is its committed row); the steps (:func:`export_onnx`,
:func:`settings_for`, :func:`compile_circuit`, :func:`generate_keys`, :func:`evm_artifacts`) are
public so that the live circuit's tests and the research prototype (``research/zk_prototype``)
build exactly the same way.

The cache lives in ``.cache/zk/gram-n{N}-k{K}/`` and ``.cache/zk/row-k{K}/``
(``MARKETPLACE_ZK_CACHE`` overrides the parent) and is keyed by a fingerprint of the rule
(:data:`marketplace.rule.RULE_VERSION`), the circuit size and the ezkl version, so a changed rule is
rebuilt, never silently reused.

WARNING: without ``srs`` the structured reference string is generated locally with
``ezkl.gen_srs``; whoever generated it knows its secret and could forge proofs. That is fine for
development and tests only. A production deployment must pass a ceremony SRS (e.g. from the
perpetual powers-of-tau) of the circuit's logrows.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ezkl
import torch
from torch import nn

from marketplace.adapters.toolchain import install_svm_solc, project_root
from marketplace.protocol.constants import SCALE
from marketplace.rule import RULE_VERSION
from marketplace.rule.circuit import GramCircuit
from marketplace.rule.row_circuit import ROW_DECOMP_BASE, ROW_DECOMP_LEGS, RowCircuit


@dataclass(frozen=True)
class CircuitKeys:
    """Paths of one circuit's cached artefacts."""

    n: int
    k: int
    root: Path

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


#: Circuit sizes offered (trainer slots -> sketch width K), chosen so that a round proves in
#: about 20-40 s on 2 cores (see bench/zk.py): 64-wide sketches up to 8 trainers, 32-wide above.
CIRCUIT_SIZES: dict[int, int] = {4: 32, 8: 64, 16: 32, 32: 32}


def circuit_for(trainers: int) -> tuple[int, int]:
    """(slots N, sketch width K) of the smallest offered circuit for ``trainers`` trainers."""
    for n, k in sorted(CIRCUIT_SIZES.items()):
        if trainers <= n:
            return n, k
    raise ValueError(f"no circuit for {trainers} trainers (at most {max(CIRCUIT_SIZES)})")


def cache_dir() -> Path:
    env = os.environ.get("MARKETPLACE_ZK_CACHE")
    return Path(env) if env else project_root() / ".cache" / "zk"


def fingerprint(n: int, k: int, rule_version: str = RULE_VERSION) -> str:
    """Changes whenever the rule (:data:`marketplace.rule.RULE_VERSION`: the code of the rule's
    folder, its constants and the committed rows), the circuit's size or the ezkl version changes."""
    return hashlib.sha256(f"{n}/{k}/{ezkl.__version__}/{rule_version}".encode()).hexdigest()[:16]


def row_fingerprint(k: int, rule_version: str = RULE_VERSION) -> str:
    """:func:`fingerprint` of the row circuit of width ``k`` (the rule's folder holds the row circuit
    and its decomposition constants, so :data:`~marketplace.rule.RULE_VERSION` covers them)."""
    return hashlib.sha256(f"row/{k}/{ezkl.__version__}/{rule_version}".encode()).hexdigest()[:16]


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


def setup(n: int, k: int, *, srs: Path | None = None, root: Path | None = None) -> CircuitKeys:
    """Builds (or reuses) everything needed to prove and verify rounds of ``n`` trainers with
    ``k``-wide sketches, and the row circuit of width ``k`` (:func:`setup_row`, same ``srs`` and
    ``root``: the verifier adapter registers both). Idempotent; a stale cache (other fingerprint) is
    rebuilt from scratch."""
    setup_row(k, srs=srs, root=root)
    keys = CircuitKeys(n, k, (root or cache_dir()) / f"gram-n{n}-k{k}")
    stamp = keys.root / "fingerprint"
    want = fingerprint(n, k)
    if stamp.is_file() and stamp.read_text() == want and keys.vka.is_file():
        return keys
    if keys.root.exists():
        shutil.rmtree(keys.root)
    keys.root.mkdir(parents=True)
    export_onnx(GramCircuit(n, k), n, k + 2, keys.onnx, tag_width=GramCircuit.tag_width)
    settings_for(keys.onnx, keys.settings)
    compile_circuit(keys.onnx, keys.compiled, keys.settings)
    generate_keys(keys, srs)
    evm_artifacts(keys)
    stamp.write_text(want)
    return keys


def setup_row(k: int, *, srs: Path | None = None, root: Path | None = None) -> RowKeys:
    """Builds (or reuses) the row circuit of width ``k`` (:class:`~marketplace.rule.row_circuit.RowCircuit`:
    hashed input, public output, scale 2**13, the decomposition base and legs of its module, the
    smallest logrows that holds it) and its keys and VKA, in ``row-k{K}``. ``srs``: a ceremony SRS of
    at least its logrows (the round circuit's serves: ezkl downsizes it); without it a development
    SRS is generated (see the module warning). Idempotent; a stale cache is rebuilt from scratch."""
    keys = RowKeys(1, k, (root or cache_dir()) / f"row-k{k}")
    stamp = keys.root / "fingerprint"
    want = row_fingerprint(k)
    if stamp.is_file() and stamp.read_text() == want and keys.vka.is_file():
        return keys
    if keys.root.exists():
        shutil.rmtree(keys.root)
    keys.root.mkdir(parents=True)
    circuit = RowCircuit(k)
    export_onnx(circuit, 1, circuit.width, keys.onnx, inputs=("row",), outputs=("row_out",))
    settings_for(keys.onnx, keys.settings, legs=ROW_DECOMP_LEGS, base=ROW_DECOMP_BASE)
    compile_circuit(keys.onnx, keys.compiled, keys.settings)
    generate_keys(keys, srs)
    evm_artifacts(keys)
    stamp.write_text(want)
    return keys


def export_onnx(
    module: nn.Module,
    n: int,
    width: int,
    path: Path,
    *,
    tag_width: int = 0,
    inputs: tuple[str, ...] | None = None,
    outputs: tuple[str, ...] = ("flags", "scores"),
) -> None:
    """ONNX of a circuit module taking ``n`` inputs ``row0..row{n-1}`` (or the names ``inputs``) of
    shape (1, ``width``) and returning ``outputs`` (default ``(flags, scores)``): opset 17, the
    TorchScript exporter (``dynamo=False``), eval mode.
    With ``tag_width``, the module takes one more input ``tag`` of shape (1, ``tag_width``) and
    returns it as one more output (the round tag of :class:`~marketplace.rule.circuit.GramCircuit`)."""
    if inputs is not None and len(inputs) != n:
        raise ValueError(f"{len(inputs)} input names for {n} inputs")
    names = list(inputs) if inputs is not None else [f"row{i}" for i in range(n)]
    zeros = [torch.zeros(1, width) for _ in range(n)] + ([torch.zeros(1, tag_width)] if tag_width else [])
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

    Without ``logrows``: the smallest logrows that holds the circuit's rows and its range-check
    table (ezkl's default sizes the table for a lookup range this circuit does not use, which
    made a 4-trainer circuit k=17 instead of k=15: 4x the proving time and an SRS 4x as large);
    a circuit that needs lookups keeps ezkl's choice. With ``logrows``: ezkl's settings at it.
    """
    if not ezkl.gen_settings(str(onnx), str(settings), py_run_args=run_args(logrows, cols, legs, base)):
        raise RuntimeError("ezkl gen_settings failed")
    out: dict[str, Any] = json.loads(settings.read_text())
    if logrows is not None or out.get("required_lookups"):
        return out
    ranges = [hi for _, hi in out.get("required_range_checks", [])] or [0]
    # rows (plus blinding) must fit, and a range table of max+1 entries needs one more bit than max
    smallest = max((int(out["num_rows"]) + 64).bit_length(), max(ranges).bit_length() + 1)
    if smallest >= out["run_args"]["logrows"]:
        return out
    if not ezkl.gen_settings(str(onnx), str(settings), py_run_args=run_args(smallest, cols, legs, base)):
        raise RuntimeError(f"ezkl gen_settings failed at logrows {smallest}")
    return dict(json.loads(settings.read_text()))


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
