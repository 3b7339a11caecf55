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
out so that only a change of behaviour changes it. Proving keys are cached under it
(:mod:`marketplace.adapters.ezkl.keys`), and :data:`RULE_VERSION` is its short form.
"""

from __future__ import annotations

import ast
import hashlib
from collections.abc import Iterable
from pathlib import Path

RULE_DIR = Path(__file__).resolve().parent
PROTOCOL_DIR = RULE_DIR.parent / "protocol"


def rule_sources(rule_dir: Path = RULE_DIR, protocol_dir: Path = PROTOCOL_DIR) -> list[Path]:
    """The files whose code is the rule: every module of ``rule_dir`` and the protocol's constants
    and committed rows."""
    return [*sorted(rule_dir.glob("*.py")), protocol_dir / "constants.py", protocol_dir / "commitment.py"]


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
