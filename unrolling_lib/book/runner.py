"""The chapter runner: a chapter's parameters, and one execution of it with papermill.

- :func:`notebook_parameters`: the parameters cell of a chapter (name → type, default, help).
- :func:`list_chapters`: every chapter in ``_toc.yml`` with its parameters.
- :func:`run_chapter`: execute one chapter into ``runs/<chapter>/<profile>-<timestamp>/`` with its
  parameters and provenance beside the executed notebook.
"""

from __future__ import annotations

import ast
import io
import json
import os
import tokenize
from datetime import datetime
from pathlib import Path
from typing import Any

from ..figures.live import HEADLESS_ENV
from ..storage import atomic_write_json, provenance
from ..validation import ParameterError
from . import chapters as book
from .profiles import PROFILES
from .results import RUN_DIR_ENV

__all__ = ["INPUT_ERRORS", "ChapterFailed", "cell_timeout", "list_chapters", "new_run_folder", "notebook_parameters",
           "parameters_of", "parse_value", "run_chapter"]


def parse_value(text: str) -> Any:
    """A ``-p`` value: a Python literal (``3``, ``0.1``, ``[0, 5]``, ``None``, ``True``) or else a string."""
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def _comments(source: str) -> dict[int, str]:
    """Line number → the text of the comment on that line."""
    found = {}
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type == tokenize.COMMENT:
            found[tok.start[0]] = tok.string.lstrip("#").strip()
    return found


def parameters_of(source: str) -> dict[str, dict[str, Any]]:
    """The parameters a ``parameters`` cell defines: name → {type, default, help}, read with ``ast``.

    Every top-level assignment counts, whatever its annotation (papermill's own inspection skips annotations
    such as ``list | None``, so it is not used here). ``default`` is the value as written; ``help`` the comment
    on the same line.
    """
    comments = _comments(source)
    found: dict[str, dict[str, Any]] = {}
    for node in ast.parse(source).body:
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.value is not None:
            name, kind = node.target.id, ast.unparse(node.annotation)
        elif isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            name, kind = node.targets[0].id, "any"
        else:
            continue
        found[name] = {"type": kind, "default": ast.unparse(node.value), "help": comments.get(node.lineno, "")}
    return found


def notebook_parameters(path: Path) -> dict[str, dict[str, Any]]:
    """The parameters cell (tagged ``parameters``) of a chapter: name → {type, default, help}."""
    import nbformat

    nb = nbformat.read(path, as_version=4)
    cells = [c for c in nb.cells if c.cell_type == "code" and "parameters" in c.get("metadata", {}).get("tags", [])]
    return parameters_of(cells[0].source) if cells else {}


def list_chapters(root: Path | None = None) -> str:
    """Every chapter with its parameters (name, type, default), after a line naming the profiles."""
    profiles = "; ".join(f"{p.name}: {p.where}" for p in PROFILES.values())
    lines = [f"profiles ({len(PROFILES)}) — {profiles}"]
    base = book.find_root(root)
    for path in book.chapters(base):
        lines.append(path.relative_to(base).as_posix())
        for name, info in notebook_parameters(path).items():
            lines.append(f"    {name:<14} {info['type']:<22} = {info['default']}")
    return "\n".join(lines)


# Errors a chapter raises for input it cannot use: reported as one line, exit status 2 (bad input).
INPUT_ERRORS = ("ParameterError", "DatasetUnavailableError")
START_TIMEOUT = 120  # seconds for the kernel to start


class ChapterFailed(RuntimeError):
    """A chapter run that stopped on an error: one line naming the chapter, the cell and the error, and where
    the executed notebook (the full log) is. ``bad_input`` is True for a :data:`INPUT_ERRORS` error."""

    def __init__(self, message: str, *, bad_input: bool) -> None:
        super().__init__(message)
        self.bad_input = bad_input


def cell_timeout(root: Path | str | None = None) -> int:
    """Seconds one cell may run, from ``_config.yml`` (``execute: timeout``), the limit of every execution."""
    import yaml

    config = yaml.safe_load((book.find_root(root) / "_config.yml").read_text())
    return int((config.get("execute") or {}).get("timeout", 600))


def _check_run_request(path: Path, profile: str, params: dict[str, Any],
                       out_root: Path | None) -> dict[str, dict[str, Any]]:
    if not path.is_file() or path.suffix != ".ipynb":
        raise ParameterError(f"chapter={str(path)!r} is not a notebook file; see `list-chapters`")
    if profile not in PROFILES:
        raise ParameterError(f"profile={profile!r} is not allowed; choose one of {', '.join(PROFILES)}")
    if "profile" in params and params["profile"] != profile:
        raise ParameterError(f"-p profile {params['profile']!r} contradicts --profile {profile!r}; give the profile "
                             "once, with --profile")
    if out_root is not None and out_root.exists() and not out_root.is_dir():
        raise ParameterError(f"out={str(out_root)!r} is a file; give a folder for the runs")
    known = notebook_parameters(path)
    for name in params:
        if name not in known:
            raise ParameterError(f"{name} is not a parameter of {path.name}; known: {', '.join(known)}")
    return known


def new_run_folder(parent: Path, prefix: str) -> Path:
    """A folder ``parent/<prefix>-<timestamp>`` that no other run has: created here, exclusively (two runs started
    in the same second get ``…-2``, ``…-3``)."""
    parent.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    for k in range(1, 1000):
        folder = parent / (f"{prefix}-{stamp}" if k == 1 else f"{prefix}-{stamp}-{k}")
        try:
            folder.mkdir()
        except FileExistsError:
            continue
        return folder
    raise RuntimeError(f"no free run folder under {parent} for {prefix}-{stamp}")


def _failure(err: BaseException, path: Path, executed: Path) -> ChapterFailed:
    """One line for a failed execution, from papermill's error (the cell, the exception) or the timeout."""
    ename = getattr(err, "ename", type(err).__name__)
    evalue = str(getattr(err, "evalue", err)).strip().splitlines()
    cell = getattr(err, "exec_count", None)
    where = f"cell [{cell}]" if cell is not None else "a cell"
    message = f"{path.name}, {where}: {ename}: {evalue[0] if evalue else ''} (full log: {executed})"
    return ChapterFailed(message, bad_input=ename in INPUT_ERRORS)


def _resume_folder(resume: Path, path: Path, params: dict[str, Any]) -> Path:
    """The folder of an earlier run of the same chapter with the same parameters, to run again in place."""
    record = resume / "run.json"
    if not record.is_file():
        raise ParameterError(f"resume={str(resume)!r} is not a run folder (it has no run.json)")
    held = json.loads(record.read_text())
    if held.get("chapter") != path.name or held.get("parameters") != params:
        raise ParameterError(f"resume={str(resume)!r} holds a run of {held.get('chapter')} with parameters "
                             f"{held.get('parameters')}; this run is {path.name} with {params}")
    return resume


def run_chapter(path: Path, profile: str, params: dict[str, Any], out_root: Path | None = None, *,
                timeout: int | None = None, resume: Path | None = None) -> Path:
    """Execute a chapter with papermill into a new ``runs/<chapter>/<profile>-<timestamp>/``; return that folder.

    ``run.json`` there records the parameters and provenance, and the run's ``status`` ("running", then
    "finished" or "failed" with the error). Every cell may run ``timeout`` seconds (default: ``_config.yml``'s
    ``execute: timeout``); a cell past it fails the run. A failure raises :class:`ChapterFailed` with one line.
    ``resume``: the folder of an interrupted or failed run of the same chapter and parameters; the chapter runs
    again there, and a chapter that checkpoints into its run folder (``book.results.run_dir()``) skips the work
    already done.
    """
    import papermill
    from papermill.exceptions import PapermillExecutionError

    _check_run_request(path, profile, params, out_root)
    base = book.find_root(path.parent)
    limit = cell_timeout(base) if timeout is None else timeout
    all_params = {"profile": profile, **params}
    if resume is not None:
        folder = _resume_folder(Path(resume), path, all_params)
    else:
        folder = new_run_folder((out_root or base / "runs") / path.stem, profile)
    record = provenance(chapter=path.name, parameters=all_params, cell_timeout=limit, repository=base)
    atomic_write_json(folder / "run.json", {**record, "status": "running"})
    executed = folder / path.name
    saved = {name: os.environ.get(name) for name in (RUN_DIR_ENV, HEADLESS_ENV)}
    os.environ[RUN_DIR_ENV] = str(folder)
    os.environ[HEADLESS_ENV] = "1"  # no frontend: the chapter opens no live widgets (figures.live)
    status: dict[str, Any] = {"status": "failed", "error": "interrupted"}
    try:
        papermill.execute_notebook(str(path), str(executed), parameters=all_params, cwd=str(path.parent),
                                   progress_bar=True, kernel_name="python3", execution_timeout=limit,
                                   start_timeout=START_TIMEOUT)
        status = {"status": "finished"}
    except PapermillExecutionError as err:
        failure = _failure(err, path, executed)
        status = {"status": "failed", "error": str(failure)}
        raise failure from None
    except TimeoutError as err:  # nbclient's CellTimeoutError is a TimeoutError
        failure = ChapterFailed(f"{path.name}: a cell ran past the {limit} s limit ({err}) (full log: {executed})",
                                bad_input=False)
        status = {"status": "failed", "error": str(failure)}
        raise failure from None
    finally:
        atomic_write_json(folder / "run.json", {**record, **status})
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
    return folder
