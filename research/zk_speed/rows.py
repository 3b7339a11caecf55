"""Count a circuit's rows without keys or proofs: ONNX export and ``ezkl.gen_settings`` only.

:func:`count_rows` exports a circuit module the way :func:`marketplace.adapters.ezkl.keys.setup` does
(same export, same run arguments: hashed inputs, public outputs, scale 13, 2 inner columns) and
reads ezkl's settings: ``num_rows`` (what sets logrows: the larger of the model's rows and the
Poseidon module's), the model's own rows, the Poseidon rows, assignments, shuffles, and the
logrows :func:`marketplace.adapters.ezkl.keys.settings_for` would pick.

:func:`node_rows` adds the rows of every node of ezkl's layout: ezkl logs, at debug level through
``pyo3_log``, "laying out <idx>: <op>" and then the region's row before each node, so a node's
rows are the difference between two consecutive reports.
"""

from __future__ import annotations

import json
import logging
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import ezkl
from torch import nn

from marketplace.adapters.ezkl.keys import export_onnx, run_args, smallest_logrows


@dataclass(frozen=True)
class RowCount:
    """What ezkl's settings say about one circuit."""

    num_rows: int
    """max(model rows, Poseidon module rows): what logrows must hold."""
    model_rows: int
    poseidon_rows: int
    assignments: int
    shuffles: int
    shuffle_cells: int
    logrows: int
    """The smallest logrows that holds the rows, the shuffle columns (plus blinding) and the
    range-check table: :func:`~marketplace.adapters.ezkl.keys.smallest_logrows`, whatever ezkl chose."""
    range_checks: list[list[int]] = field(default_factory=list)


def _count(
    onnx: Path, workdir: Path, *, visibility: str, io_range: bool, base: int | None, legs: int, cols: int, rebase: int
) -> RowCount:
    settings = workdir / f"settings-{visibility}-{int(io_range)}-{base}-{legs}-{cols}-{rebase}.json"
    ra = run_args(legs=legs, base=base, cols=cols)
    ra.scale_rebase_multiplier = rebase
    ra.input_visibility = visibility
    ra.ignore_range_check_inputs_outputs = not io_range
    if not ezkl.gen_settings(str(onnx), str(settings), py_run_args=ra):
        raise RuntimeError("ezkl gen_settings failed")
    out = json.loads(settings.read_text())
    poseidon = out.get("module_sizes", {}).get("poseidon", [0])[0]
    needed = smallest_logrows(out)
    return RowCount(
        num_rows=int(out["num_rows"]),
        model_rows=-1,
        poseidon_rows=int(poseidon),
        assignments=int(out["total_assignments"]),
        shuffles=int(out.get("num_shuffles", 0)),
        shuffle_cells=int(out.get("total_shuffle_col_size", 0)),
        logrows=needed,
        range_checks=[list(r) for r in out.get("required_range_checks", [])],
    )


def export(module: nn.Module, n: int, width: int, path: Path, tag_width: int) -> None:
    """The ONNX of ``module`` as the production build exports it (``n`` rows of ``width``, the tag)."""
    export_onnx(module, n, width, path, tag_width=tag_width)


def count_rows(
    module: nn.Module,
    n: int,
    width: int,
    *,
    tag_width: int = 0,
    visibility: str = "hashed",
    io_range: bool = True,
    base: int | None = None,
    legs: int = 2,
    cols: int = 2,
    rebase: int = 1,
) -> RowCount:
    """:class:`RowCount` of ``module`` (``n`` inputs of shape (1, ``width``), then the tag).

    ``visibility``: ezkl's input visibility (``"private"`` drops the Poseidon module);
    ``io_range=False`` sets ezkl's ``ignore_range_check_inputs_outputs``; ``base``/``legs``: the
    decomposition of every comparison and range check; ``cols``: inner columns; ``rebase``: ezkl's
    ``scale_rebase_multiplier`` (2: products are rescaled only above scale 26)."""
    with tempfile.TemporaryDirectory(prefix="zk-rows-") as tmp:
        onnx = Path(tmp) / "net.onnx"
        export(module, n, width, onnx, tag_width)
        opts = {"io_range": io_range, "base": base, "legs": legs, "cols": cols, "rebase": rebase}
        got = _count(onnx, Path(tmp), visibility=visibility, **opts)
        model = got.num_rows
        if visibility != "private":  # the model's own rows: the same layout without the module
            model = _count(onnx, Path(tmp), visibility="private", **opts).num_rows
    return RowCount(**{**got.__dict__, "model_rows": model})


_LAYING = re.compile(r"laying out (\d+): (.*)")
_ROWS = re.compile(r"\(rows=(\d+), coord=(\d+)")
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


class _Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(_ANSI.sub("", record.getMessage()))


def node_rows(module: nn.Module, n: int, width: int, *, tag_width: int = 0) -> list[tuple[int, str, int]]:
    """(node index, op, rows) of every node of ezkl's layout of ``module`` (private inputs: the
    model's rows only). Must run before any other ezkl call in the process: ``pyo3_log`` caches
    the log level at the first call."""
    capture = _Capture()
    logger = logging.getLogger("ezkl")
    logger.setLevel(logging.DEBUG)
    logger.addHandler(capture)
    try:
        with tempfile.TemporaryDirectory(prefix="zk-nodes-") as tmp:
            onnx = Path(tmp) / "net.onnx"
            export(module, n, width, onnx, tag_width)
            ra = run_args()
            ra.input_visibility = "private"
            if not ezkl.gen_settings(str(onnx), str(Path(tmp) / "s.json"), py_run_args=ra):
                raise RuntimeError("ezkl gen_settings failed")
            total = int(json.loads((Path(tmp) / "s.json").read_text())["num_rows"])
    finally:
        logger.removeHandler(capture)
    nodes: list[tuple[int, str]] = []
    starts: list[int] = []
    pending: tuple[int, str] | None = None
    for line in capture.lines:
        laid = _LAYING.search(line)
        if laid:
            pending = (int(laid.group(1)), laid.group(2))
            continue
        rows = _ROWS.search(line)
        if rows and pending is not None:
            nodes.append(pending)
            starts.append(int(rows.group(1)))
            pending = None
    # gen_settings lays the model out more than once (dummy passes): keep the last full pass
    first = max(i for i, (idx, _) in enumerate(nodes) if idx == nodes[0][0])
    nodes, starts = nodes[first:], starts[first:]
    ends = [*starts[1:], total]
    return [(idx, op, end - start) for (idx, op), start, end in zip(nodes, starts, ends, strict=True)]
