"""The scoring rule in one place: what flags and pays a round, in every form that must agree.

- :mod:`~marketplace.rule.gram`: the rule's constants (:class:`~marketplace.rule.gram.GramConfig`),
  its real-arithmetic form and its exact integer form (what pays, bit for bit the circuit's outputs);
- :mod:`~marketplace.rule.circuit` and :mod:`~marketplace.rule.networks`: the circuit ezkl proves,
  and its layout per size (``CIRCUIT_LAYOUTS``: sort and inner columns; it changes rows, never a
  value, and lives here so that the fingerprint covers it);
- :mod:`~marketplace.rule.strategy`, :mod:`~marketplace.rule.scorer`, :mod:`~marketplace.rule.aggregate`:
  the rule as a round scorer (flag -> score -> the model's step: the paid updates and the unpaid ones that
  agree with them, clipped; its constants ``MAX_STEP`` and ``COPY_COS`` live in ``aggregate``, audited, not
  proven: no circuit reads them).

:func:`rule_fingerprint` identifies the rule: a hash of the code of every module in this folder and
of the protocol modules it reads (fixed point, committed rows), with docstrings and comments left
out so that only a change of behaviour changes it. :data:`RULE_VERSION` is its short form: a round
verifier declares it on chain and the aggregator proves only for a verifier that declares its own.
:data:`CIRCUIT_VERSION` is the same hash over the circuits' code only (:func:`circuit_sources`: the round
and row circuits and every module of this folder or the protocol they import, transitively): proving
keys are cached under it (:mod:`marketplace.adapters.ezkl.keys`), so a change of what no circuit reads
(the model step, the scorer) changes the rule's version but rebuilds no key.
"""

from __future__ import annotations

import ast
import hashlib
from collections.abc import Iterable
from pathlib import Path

RULE_DIR = Path(__file__).resolve().parent
PROTOCOL_DIR = RULE_DIR.parent / "protocol"


def rule_sources(rule_dir: Path = RULE_DIR, protocol_dir: Path = PROTOCOL_DIR) -> list[Path]:
    """The files whose code is the rule: every module of ``rule_dir`` and every module of ``protocol_dir`` they
    import, transitively (the fixed point, the committed rows, the sketch)."""
    return _imported_closure(sorted(rule_dir.glob("*.py")), rule_dir, protocol_dir)


#: The modules whose code is a circuit ezkl proves (the round's and the row's).
CIRCUIT_MODULES = ("circuit", "row_circuit")


def circuit_sources(rule_dir: Path = RULE_DIR, protocol_dir: Path = PROTOCOL_DIR) -> list[Path]:
    """The files whose code is the circuits: :data:`CIRCUIT_MODULES` of ``rule_dir`` and every module of
    ``rule_dir`` or ``protocol_dir`` they import, transitively (a subset of :func:`rule_sources`)."""
    return _imported_closure([rule_dir / f"{name}.py" for name in CIRCUIT_MODULES], rule_dir, protocol_dir)


def _imported_closure(starts: list[Path], rule_dir: Path, protocol_dir: Path) -> list[Path]:
    """``starts`` and every module of ``rule_dir`` or ``protocol_dir`` they import (``from marketplace.rule.X
    import ...``, ``import marketplace.protocol.Y``), transitively, sorted by folder and name. A module they
    import from elsewhere in the package is a ValueError: no fingerprint would see it."""
    folders = {"rule": rule_dir, "protocol": protocol_dir}
    seen: set[Path] = set()
    todo = list(starts)
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        for module in _package_imports(path.read_text()):
            parts = module.split(".")
            if len(parts) != 3 or parts[1] not in folders:
                raise ValueError(f"{path.name} imports {module}: the rule reads marketplace.rule and .protocol only")
            todo.append(folders[parts[1]] / f"{parts[2]}.py")
    return sorted(seen, key=lambda p: (p.parent.name != rule_dir.name, p.parent.name, p.name))


def _package_imports(source: str) -> set[str]:
    """The ``marketplace.*`` modules a module's code imports."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {m for m in found if m == "marketplace" or m.startswith("marketplace.")}


def _is_string_statement(node: ast.AST) -> bool:
    return isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)


def _code_only(source: str) -> str:
    """The module's syntax tree without docstrings (comments are not in it)."""
    tree = ast.parse(source)
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        # docstrings, and attribute docstrings (a string statement after an assignment)
        if isinstance(body, list):
            node.body = [s for s in body if not _is_string_statement(s)] or [ast.Pass()]  # type: ignore[attr-defined]
    return ast.dump(tree, annotate_fields=False)


def rule_fingerprint(files: Iterable[Path] | None = None) -> str:
    """sha256 (hex) of the code of ``files`` (default: :func:`rule_sources`), by file name."""
    h = hashlib.sha256()
    for path in files if files is not None else rule_sources():
        h.update(f"{path.parent.name}/{path.name}\0".encode())
        h.update(_code_only(path.read_text()).encode())
        h.update(b"\0")
    return h.hexdigest()


#: The rule this code implements: the first 16 hex digits of :func:`rule_fingerprint`.
RULE_VERSION = rule_fingerprint()[:16]

#: The circuits this code proves: the first 16 hex digits of :func:`rule_fingerprint` of :func:`circuit_sources`.
CIRCUIT_VERSION = rule_fingerprint(circuit_sources())[:16]
