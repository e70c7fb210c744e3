"""The import rule of book/architecture.md, read from the package's own source: imports flow down the layers."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "unrolling_lib"

# Each top-level module or subpackage of unrolling_lib and its layer (book/architecture.md).
LAYERS = {
    "validation": 0, "params": 0, "storage": 0, "progress": 0,
    "data": 1, "models": 1,
    "losses": 2, "curvature": 2, "unlearning_error": 2, "unlearning": 2, "metrics": 2, "privacy": 2,
    "training": 3,
    "theory": 4, "experiments": 4,
    "figures": 5,
    "book": 6,
}
ROOT_FILES = {"__init__", "__main__"}  # the package root: lazy names and the entry point, in no layer
# Modules that need an optional extra, imported only by who installs it: the Trainer integration needs
# transformers (the ``text`` extra), which itself loads yaml.
OPTIONAL = {"unrolling_lib.training.hf": "transformers"}


def _unit(path: Path) -> str:
    """The top-level module or subpackage a file belongs to."""
    return path.relative_to(PACKAGE).parts[0].removesuffix(".py")


def _imported_units(path: Path) -> set[str]:
    """The package's own top-level units that ``path`` imports (absolute or relative, at any depth)."""
    return _units_in(path.read_text(), depth=len(path.relative_to(PACKAGE).parts) - 1)


def _units_in(source: str, depth: int) -> set[str]:
    """The units imported by ``source``, a file ``depth`` folders below unrolling_lib/ (0: a top-level module)."""
    tree = ast.parse(source)
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level == 0:
                parts = (node.module or "").split(".")
                if parts[0] != "unrolling_lib":
                    continue
                found |= {parts[1]} if len(parts) > 1 else {a.name for a in node.names}
            elif node.level > depth:  # relative import reaching the package root
                found |= {node.module.split(".")[0]} if node.module else {a.name for a in node.names}
        elif isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                if parts[0] == "unrolling_lib":
                    # ``import unrolling_lib`` alone reaches every unit through attributes: not allowed inside
                    found.add(parts[1] if len(parts) > 1 else "*")
        elif (isinstance(node, ast.Call) and isinstance(node.func, (ast.Attribute, ast.Name))
              and getattr(node.func, "attr", getattr(node.func, "id", "")) == "import_module"):
            found.add("*")  # a dynamic import cannot be checked: only the package root may use one
    return found


def _files() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts)


def test_every_unit_has_a_layer():
    units = {_unit(p) for p in _files()} - ROOT_FILES
    assert units == set(LAYERS), f"layer unknown for {units - set(LAYERS)}; gone: {set(LAYERS) - units}"


@pytest.mark.parametrize("path", [p for p in _files() if _unit(p) not in ROOT_FILES],
                         ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_flow_down_the_layers(path):
    unit = _unit(path)
    upward = sorted(u for u in _imported_units(path) if u == "*" or LAYERS.get(u, -1) > LAYERS[unit])
    assert not upward, f"{path.relative_to(PACKAGE)} (layer {LAYERS[unit]}) imports {upward} from above"


@pytest.mark.parametrize(("source", "depth", "expected"), [
    ("from ..figures.common import f32\n", 1, {"figures"}),  # e.g. from theory/toy.py
    ("from .. import figures\n", 1, {"figures"}),
    ("from .figures import common\n", 0, {"figures"}),  # from a top-level module
    ("from . import book\n", 0, {"book"}),
    ("from unrolling_lib.book import profiles\n", 2, {"book"}),
    ("import unrolling_lib.figures.toy\n", 0, {"figures"}),
    ("from .common import f32\n", 1, set()),  # inside its own unit
    ("import numpy\nfrom torch import nn\n", 0, set()),
    ("from unrolling_lib import validation, figures\n", 1, {"validation", "figures"}),
    ("from .. import validation, figures\n", 1, {"validation", "figures"}),
    ("import unrolling_lib\n", 0, {"*"}),
    ("importlib.import_module('unrolling_lib.figures')\n", 0, {"*"}),
])
def test_the_checker_reads_every_import_form(source, depth, expected):
    """The rule can fail: every way of writing an import of another unit is seen."""
    assert _units_in(source, depth) == expected


def test_lower_layers_do_not_load_plotly_or_the_book_tooling():
    """Importing every module of layers 0–4 pulls in neither plotly, IPython nor papermill (the lean install)."""
    import subprocess
    import sys

    modules = sorted(".".join(p.relative_to(PACKAGE.parent).with_suffix("").parts).removesuffix(".__init__")
                     for p in _files() if _unit(p) not in ROOT_FILES and LAYERS[_unit(p)] <= 4)
    modules = [m for m in modules if m not in OPTIONAL]
    code = (f"import importlib, sys\nfor m in {modules!r}: importlib.import_module(m)\n"
            "print(sorted(m for m in ('plotly', 'IPython', 'papermill', 'nbformat', 'yaml') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert len(modules) > 20 and out.stdout.strip() == "[]"
