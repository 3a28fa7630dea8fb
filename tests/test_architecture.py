"""Imports run one way: a layer never imports a higher one, and no two modules import each other.

Every ``import`` and ``from … import`` of the package's own modules is read with :mod:`ast`,
including imports inside functions and under ``if TYPE_CHECKING:`` (a deferred import is still
a dependency), and ``importlib.import_module("topo_neurons.…")`` calls with a literal name.
Each module belongs to the layer of its top-level module or subpackage (``topo_neurons.cli.analyse``
is in ``cli``); the layers, lowest first, are :data:`LAYERS`.

Python runs a package's ``__init__`` before any of its submodules, so at run time every module
"imports" the root; the rules below are about the import statements the code writes.

Run as a script (``python tests/test_architecture.py``) this prints the layer graph that
``docs/architecture.md`` shows; a test checks that the page holds exactly that graph.
"""

from __future__ import annotations

import ast
import graphlib
import sys
from collections.abc import Mapping
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "topo_neurons"

#: The layers, lowest first, and the top-level modules / subpackages in each. A module may import
#: its own layer and the layers below it, never one above. Helpers sit at the bottom.
LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    # Plumbing with no import of the package: atomic writes (the public ``io``), a model's eval
    # mode for a block, the n × n memory guard, torch's thread count around numba/OpenMP, the
    # edge-gather kernels, gathering across DDP ranks.
    (
        "helpers",
        ("io", "_modes", "_memory", "_options", "_finite", "_threads", "_edges", "distributed"),
    ),
    ("correlation", ("correlation",)),
    ("persistence", ("persistence",)),
    ("capture", ("capture",)),
    # ``training.Regularized`` is a model plus one regulariser: it belongs with them.
    ("regularizers", ("regularizers", "training")),
    ("analysis", ("analysis",)),
    # Acting on redundancy: folds a model using capture, persistence and analysis.
    ("compress", ("compress",)),
    ("plotting", ("plotting",)),
    # ``tracking`` records barcodes during training and draws their evolution (uses plotting);
    # the Lightning callback builds on it.
    ("integrations", ("tracking", "integrations")),
    # The root ``__init__``: the public API, re-exports of the layers above.
    ("api", ("",)),
    # The paper's harness: a client of the public API.
    ("experiments", ("experiments",)),
    ("cli", ("cli",)),
)

#: Known upward imports, each with its file and why it stays for now. An entry that no longer
#: occurs fails the test (remove it then); a new upward import fails too.
ALLOWED_UPWARD: dict[tuple[str, str], str] = {
    ("topo_neurons", "topo_neurons.experiments"): (
        "topo_neurons/__init__.py `__getattr__`: the deprecated root aliases of reproduce, "
        "friedman_test, critical_difference, plot_cd_diagram, make_model, load_task import "
        "topo_neurons.experiments lazily, with a DeprecationWarning; removed with the aliases "
        "in the next release"
    ),
}

#: ``experiments`` is a client of the library: it imports the toolkit only through public
#: modules (no ``topo_neurons._x`` and no ``topo_neurons.x._y``). Known exceptions:
ALLOWED_PRIVATE: dict[tuple[str, str], str] = {}

CLIENT_LAYERS = ("experiments",)

#: A module holds one concept; past :data:`MAX_LINES` lines it is split, unless it is listed
#: here with the reason it is still one concept. An entry back under the limit fails the test.
MAX_LINES = 400
LONG_MODULES: dict[str, str] = {
    "persistence/_barcode.py": (
        "one concept: the Barcode type, its queries (clusters, pairs), its GUDHI round trip "
        "(with the deprecated list form) and its one serialisation"
    ),
}


# ----------------------------------------------------------------------------- reading imports
def module_files(package: Path) -> dict[str, Path]:
    """Dotted module name → file, for every ``.py`` file of ``package``."""
    out = {}
    for path in sorted(package.rglob("*.py")):
        parts = list(path.relative_to(package.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def _imported(module: str, path: Path, node: ast.AST, known: Mapping[str, Path]) -> list[str]:
    """The package's modules that one import node (or ``import_module`` call) names."""
    top = next(iter(known)).split(".")[0]
    if isinstance(node, ast.Import):
        names = [a.name for a in node.names]
    elif isinstance(node, ast.ImportFrom):
        if node.level:
            package = module if path.name == "__init__.py" else module.rpartition(".")[0]
            base_parts = package.split(".")[: len(package.split(".")) - (node.level - 1)]
            base = ".".join(base_parts + ([node.module] if node.module else []))
        else:
            base = node.module or ""
        # ``from pkg import sub`` names the submodule; ``from mod import name`` the module.
        names = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names]
    elif (
        isinstance(node, ast.Call)
        and isinstance(node.func, (ast.Attribute, ast.Name))
        and getattr(node.func, "attr", getattr(node.func, "id", None)) == "import_module"
        and node.args
        and isinstance(node.args[0], ast.Constant)
        and isinstance(node.args[0].value, str)
    ):
        names = [node.args[0].value]
    else:
        return []
    out = []
    for name in names:
        if name.split(".")[0] != top:
            continue
        while name not in known and "." in name:  # ``import pkg.mod.attr`` → ``pkg.mod``
            name = name.rpartition(".")[0]
        if name != module:
            out.append(name)
    return out


def import_graph(package: Path) -> dict[str, set[str]]:
    """Module → the package's modules it imports (anywhere in its file)."""
    known = module_files(package)
    graph: dict[str, set[str]] = {}
    for module, path in known.items():
        deps: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            deps.update(_imported(module, path, node, known))
        graph[module] = deps
    return graph


# ----------------------------------------------------------------------------- rules
def layer_of(module: str, layers=LAYERS) -> str:
    """The layer of ``topo_neurons.x.y`` (by its top-level name ``x``; the root is ``""``)."""
    parts = module.split(".")
    name = parts[1] if len(parts) > 1 else ""
    for layer, members in layers:
        if name in members:
            return layer
    raise KeyError(
        f"module {module} is in no layer: add {name!r} to LAYERS in tests/test_architecture.py"
    )


def upward_imports(graph: Mapping[str, set[str]], layers=LAYERS) -> set[tuple[str, str]]:
    rank = {layer: k for k, (layer, _) in enumerate(layers)}
    return {
        (a, b)
        for a, deps in graph.items()
        for b in deps
        if rank[layer_of(b, layers)] > rank[layer_of(a, layers)]
    }


def private_imports(graph: Mapping[str, set[str]], layers=LAYERS) -> set[tuple[str, str]]:
    """Imports by a client layer of a private module of another layer."""
    out = set()
    for a, deps in graph.items():
        if layer_of(a, layers) not in CLIENT_LAYERS:
            continue
        for b in deps:
            same = layer_of(b, layers) == layer_of(a, layers)
            if not same and any(part.startswith("_") for part in b.split(".")[1:]):
                out.add((a, b))
    return out


def find_cycle(graph: Mapping[str, set[str]]) -> list[str] | None:
    """One import cycle between modules (a list ``[a, b, …, a]``), or ``None``."""
    try:
        graphlib.TopologicalSorter(graph).prepare()
    except graphlib.CycleError as exc:
        return list(exc.args[1])
    return None


def _without(graph: Mapping[str, set[str]], edges) -> dict[str, set[str]]:
    return {a: {b for b in deps if (a, b) not in edges} for a, deps in graph.items()}


# ----------------------------------------------------------------------------- the package
@pytest.fixture(scope="module")
def graph():
    return import_graph(PACKAGE)


def test_every_module_has_a_layer(graph):
    for module in graph:
        layer_of(module)  # raises, naming the module and what to add
    tops = {m.split(".")[1] if "." in m else "" for m in graph}
    declared = {name for _, members in LAYERS for name in members}
    assert declared <= tops, f"LAYERS names modules that do not exist: {declared - tops}"


def test_no_upward_import(graph):
    found = upward_imports(graph)
    new = sorted(found - set(ALLOWED_UPWARD))
    assert not new, "upward imports (a lower layer imports a higher one):\n" + "\n".join(
        f"  {a} ({layer_of(a)}) imports {b} ({layer_of(b)})" for a, b in new
    )
    stale = sorted(set(ALLOWED_UPWARD) - found)
    assert not stale, f"ALLOWED_UPWARD entries that no longer occur, remove them: {stale}"


def test_no_import_cycle(graph):
    cycle = find_cycle(_without(graph, ALLOWED_UPWARD))
    assert cycle is None, "import cycle: " + " → ".join(cycle)


def test_experiments_use_the_public_api(graph):
    found = private_imports(graph)
    new = sorted(found - set(ALLOWED_PRIVATE))
    assert not new, "experiments import private modules of the toolkit:\n" + "\n".join(
        f"  {a} imports {b}" for a, b in new
    )
    stale = sorted(set(ALLOWED_PRIVATE) - found)
    assert not stale, f"ALLOWED_PRIVATE entries that no longer occur, remove them: {stale}"


def test_the_docs_show_the_current_graph(graph):
    page = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    assert mermaid(graph) in page, (
        "docs/architecture.md's import graph is out of date: paste the output of "
        "`python tests/test_architecture.py` into it"
    )


def long_modules(package: Path, limit: int = MAX_LINES) -> dict[str, int]:
    """Line counts of the package's modules longer than ``limit``, by path inside the package."""
    counts = {
        path.relative_to(package).as_posix(): len(path.read_text(encoding="utf-8").splitlines())
        for path in package.rglob("*.py")
    }
    return {rel: n for rel, n in counts.items() if n > limit}


def test_no_module_over_the_line_limit_unless_one_concept():
    found = long_modules(PACKAGE)
    new = {rel: n for rel, n in found.items() if rel not in LONG_MODULES}
    assert not new, (
        f"modules over {MAX_LINES} lines, split them (or list why in LONG_MODULES): {new}"
    )
    stale = sorted(set(LONG_MODULES) - set(found))
    assert not stale, f"LONG_MODULES entries no longer over {MAX_LINES} lines, remove them: {stale}"


def test_line_limit_check_can_fail(tmp_path):
    pkg = _write_package(tmp_path, {"small.py": "x = 1\n", "big.py": "x = 1\n" * 401})
    assert long_modules(pkg) == {"big.py": 401}


# ----------------------------------------------------------------------------- the checker
def _write_package(root: Path, files: Mapping[str, str]) -> Path:
    for rel, text in files.items():
        path = root / "pkg" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root / "pkg"


def test_checker_finds_upward_imports_cycles_and_hidden_imports(tmp_path):
    """The rules can fail: a synthetic package with each kind of violation."""
    layers = (("low", ("low",)), ("mid", ("mid", "sub")), ("high", ("high",)), ("api", ("",)))
    pkg = _write_package(
        tmp_path,
        {
            "__init__.py": "from .high import h\n",
            "low.py": "def f():\n    from .high import h  # inside a function\n",
            "mid.py": "import importlib\nX = importlib.import_module('pkg.high')\n",
            "high.py": "from . import low\nfrom .sub import _impl\n",
            "sub/__init__.py": "from ._impl import g\n",
            "sub/_impl.py": "from typing import TYPE_CHECKING\n"
            "if TYPE_CHECKING:\n    from ..sub import g\n",
        },
    )
    g = import_graph(pkg)
    assert g["pkg.low"] == {"pkg.high"}
    assert g["pkg.mid"] == {"pkg.high"}
    assert g["pkg.high"] == {"pkg.low", "pkg.sub._impl"}
    assert g["pkg.sub._impl"] == {"pkg.sub"}
    assert upward_imports(g, layers) == {("pkg.low", "pkg.high"), ("pkg.mid", "pkg.high")}
    cycle = find_cycle(g)
    assert cycle is not None and cycle[0] == cycle[-1]
    assert {"pkg.low", "pkg.high"} <= set(cycle) or {"pkg.sub", "pkg.sub._impl"} <= set(cycle)
    assert find_cycle(_without(g, {("pkg.low", "pkg.high"), ("pkg.sub._impl", "pkg.sub")})) is None
    with pytest.raises(KeyError, match="add 'nowhere' to LAYERS"):
        layer_of("pkg.nowhere.x", layers)


# ----------------------------------------------------------------------------- the docs' graph
def layer_graph(graph: Mapping[str, set[str]]) -> dict[str, set[str]]:
    """Top-level module / subpackage → those it imports (the root shown as ``topo_neurons``)."""

    def top(module: str) -> str:
        parts = module.split(".")
        return parts[1] if len(parts) > 1 else parts[0]

    out: dict[str, set[str]] = {}
    for a, deps in graph.items():
        out.setdefault(top(a), set()).update(top(b) for b in deps if top(b) != top(a))
    return out


def mermaid(graph: Mapping[str, set[str]]) -> str:
    """The layer graph as a mermaid flowchart (one subgraph per layer, lowest at the bottom)."""
    tops = layer_graph(graph)
    lines = ["```mermaid", "flowchart BT"]
    for k, (layer, members) in enumerate(LAYERS):
        names = [m or "topo_neurons" for m in members]
        lines.append(f'  subgraph layer{k}["{k}. {layer}"]')
        lines += [f"    {n.strip('_') or n}[{n}]" for n in names]
        lines.append("  end")
    allowed = {(a.split(".")[-1], b.split(".")[-1]) for a, b in ALLOWED_UPWARD}
    for a in sorted(tops):
        for b in sorted(tops[a]):
            arrow = "-.->|deprecated, lazy|" if (a, b) in allowed else "-->"
            lines.append(f"  {a.strip('_') or a} {arrow} {b.strip('_') or b}")
    lines.append("```")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.stdout.write(mermaid(import_graph(PACKAGE)) + "\n")
