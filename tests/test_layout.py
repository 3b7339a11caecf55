"""The package layout holds: each folder imports only the folders below it, no module imports
itself back through others, nothing reaches into another module's private names, and the package
never imports the research code.

The layers, lowest first (README, "Layout: the data path")::

    protocol            what every party agrees on (constants, committed rows, ordering, documents)
    rule, fl            the scoring rule in every form; models, data and local training
    adapters/*          chain, IPFS, ezkl, toolchain, processes, host interfaces (talk to the outside world)
    round               collect -> score -> prove, shared by the aggregator and the audit
    roles               trainer, aggregator, audit, verify
    web                 the web UI and API
    demo                the main job (every role on one machine)
    cli                 the ``marketplace`` command
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "marketplace"

_ADAPTERS = {
    "adapters.chain",
    "adapters.ipfs",
    "adapters.ezkl",
    "adapters.toolchain",
    "adapters.processes",
    "adapters.host_interfaces",
}
_BELOW_ROUND = {"protocol", "rule", "fl"} | _ADAPTERS
#: What each folder may import (besides itself).
ALLOWED: dict[str, set[str]] = {
    "protocol": set(),
    "adapters": set(),  # the package marker only
    "rule": {"protocol"},
    "fl": set(),
    "adapters.toolchain": set(),
    "adapters.processes": set(),
    "adapters.host_interfaces": set(),  # this host's network interfaces (IPFS swarm filters, the commit inbox's URLs)
    "adapters.chain": {"protocol", "rule", "adapters.toolchain", "adapters.processes"},
    "adapters.ipfs": {"protocol", "adapters.toolchain", "adapters.processes", "adapters.host_interfaces"},
    "adapters.ezkl": {"protocol", "rule", "adapters.chain", "adapters.toolchain"},
    "round": _BELOW_ROUND,
    "roles": _BELOW_ROUND | {"round"},
    "web": _BELOW_ROUND | {"round", "roles"},
    "demo": _BELOW_ROUND | {"round", "roles", "web"},
    "cli": _BELOW_ROUND | {"round", "roles", "web", "demo"},
}


def _modules() -> dict[str, ast.Module]:
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE.parent).with_suffix("")
        name = ".".join(rel.parts[:-1] if rel.name == "__init__" else rel.parts)
        out[name] = ast.parse(path.read_text(), filename=str(path))
    return out


def _folder(module: str) -> str:
    """``marketplace.adapters.chain.client`` -> ``adapters.chain``; ``marketplace.round.score`` -> ``round``."""
    parts = module.split(".")[1:]
    if not parts:
        return ""
    if parts[0] == "adapters" and len(parts) > 1:
        return f"adapters.{parts[1]}"
    return parts[0]


def _imports(tree: ast.Module) -> list[tuple[int, str]]:
    """Every absolute import in the module, top-level or inside functions (a lazy import is still a dependency)."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module))
            found.extend((node.lineno, f"{node.module}.{a.name}") for a in node.names)
        elif isinstance(node, ast.Import):
            found.extend((node.lineno, a.name) for a in node.names)
    return found


MODULES = _modules()


def test_every_folder_has_a_layer() -> None:
    folders = {_folder(m) for m in MODULES} - {""}
    assert folders <= set(ALLOWED), f"folders without a layer: {sorted(folders - set(ALLOWED))}"


@pytest.mark.parametrize("module", sorted(MODULES))
def test_imports_only_lower_layers(module: str) -> None:
    folder = _folder(module)
    allowed = ALLOWED.get(folder, set()) | {folder}
    bad = []
    for line, target in _imports(MODULES[module]):
        top = target.split(".")[0]
        if top in ("research", "tests", "bench", "scripts"):
            bad.append(f"line {line}: {target} (the package never imports {top}/)")
        elif top == "marketplace" and target in MODULES and _folder(target) not in allowed:
            bad.append(f"line {line}: {target} ({_folder(target)} is not below {folder})")
    assert not bad, f"{module} imports upward:\n" + "\n".join(bad)


def test_no_import_cycles() -> None:
    graph: dict[str, set[str]] = defaultdict(set)
    for module, tree in MODULES.items():
        for _, target in _imports(tree):
            if target in MODULES and target != module and not module.startswith(target + "."):
                graph[module].add(target)
    cycles = []
    state: dict[str, int] = {}

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycles.append([*path[path.index(nxt) :], nxt])
            elif nxt not in state:
                visit(nxt, [*path, nxt])
        state[node] = 2

    for module in sorted(MODULES):
        if module not in state:
            visit(module, [module])
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(c) for c in cycles)


def test_no_private_names_across_modules() -> None:
    """``obj._name`` is only written on ``self``/``cls``; ``from x import _name`` never."""
    bad = []
    for module, tree in MODULES.items():
        for node in ast.walk(tree):
            private = isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__")
            if private and not (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls")):
                bad.append(f"{module}:{node.lineno}: {ast.unparse(node)}")
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("marketplace"):
                bad.extend(
                    f"{module}:{node.lineno}: from {node.module} import {a.name}"
                    for a in node.names
                    if a.name.startswith("_") and not a.name.startswith("__")
                )
    assert not bad, "private names used from outside their class or module:\n" + "\n".join(bad)
