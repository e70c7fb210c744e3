"""The chapter runner: a chapter's parameters, and one execution of it with papermill.

- :func:`notebook_parameters`: the parameters cell of a chapter (name → type, default, help).
- :func:`list_chapters`: every chapter in ``_toc.yml`` with its parameters.
- :func:`run_chapter`: execute one chapter into ``runs/<chapter>/<profile>-<timestamp>/`` with its
  parameters and provenance beside the executed notebook.
"""

from __future__ import annotations

import ast
import os
from datetime import datetime
from pathlib import Path
from typing import Any

from ..storage import atomic_write_json, provenance
from ..validation import ParameterError
from . import chapters as book
from .profiles import PROFILES
from .results import RUN_DIR_ENV

__all__ = ["list_chapters", "notebook_parameters", "parse_value", "run_chapter"]


def parse_value(text: str) -> Any:
    """A ``-p`` value: a Python literal (``3``, ``0.1``, ``[0, 5]``, ``None``, ``True``) or else a string."""
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def notebook_parameters(path: Path) -> dict[str, dict[str, Any]]:
    """The parameters cell of a chapter: name → {type, default, help}."""
    import papermill

    found = papermill.inspect_notebook(str(path))
    return {
        name: {"type": p["inferred_type_name"], "default": p["default"], "help": p["help"]}
        for name, p in found.items()
    }


def list_chapters(root: Path | None = None) -> str:
    lines = []
    base = book.find_root(root)
    for path in book.chapters(base):
        lines.append(path.relative_to(base).as_posix())
        for name, info in notebook_parameters(path).items():
            lines.append(f"    {name:<14} {info['type']:<22} = {info['default']}")
    return "\n".join(lines)


def _check_run_request(path: Path, profile: str, params: dict[str, Any]) -> dict[str, dict[str, Any]]:
    if not path.is_file() or path.suffix != ".ipynb":
        raise ParameterError(f"chapter={str(path)!r} is not a notebook file; see `list-chapters`")
    if profile not in PROFILES:
        raise ParameterError(f"profile={profile!r} is not allowed; choose one of {', '.join(PROFILES)}")
    known = notebook_parameters(path)
    for name in params:
        if name not in known:
            raise ParameterError(f"{name} is not a parameter of {path.name}; known: {', '.join(known)}")
    return known


def run_chapter(path: Path, profile: str, params: dict[str, Any], out_root: Path | None = None) -> Path:
    """Execute a chapter with papermill into ``runs/<chapter>/<profile>-<timestamp>/``; return that folder."""
    import papermill

    _check_run_request(path, profile, params)
    base = book.find_root(path.parent)
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    folder = (out_root or base / "runs") / path.stem / f"{profile}-{stamp}"
    folder.mkdir(parents=True, exist_ok=True)
    all_params = {"profile": profile, **params}
    atomic_write_json(folder / "run.json", provenance(chapter=path.name, parameters=all_params))
    previous = os.environ.get(RUN_DIR_ENV)
    os.environ[RUN_DIR_ENV] = str(folder)
    try:
        papermill.execute_notebook(str(path), str(folder / path.name), parameters=all_params,
                                   cwd=str(path.parent), progress_bar=True, kernel_name="python3")
    finally:
        if previous is None:
            os.environ.pop(RUN_DIR_ENV, None)
        else:
            os.environ[RUN_DIR_ENV] = previous
    return folder


