"""Command line: ``python -m unrolling_lib <command>``.

- ``list-chapters``: the chapters in ``_toc.yml`` with their parameters, types and defaults.
- ``run-chapter book/x.ipynb --profile colab -p name value``: execute one chapter with papermill; the
  executed notebook, its parameters and its results go to ``runs/<chapter>/<profile>-<timestamp>/``.
- ``stage-assets``: copy plotly.js and MathJax into the book (``make book`` does this).
- ``sync-chapters``: rewrite Colab links and install cells from ``_config.yml``.
- ``bench <name>``: run a benchmark (see ``unrolling_lib.bench``).
"""

from __future__ import annotations

import argparse
import ast
import os
import sys
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from . import book
from .profiles import PROFILES, ParameterError
from .results import RUN_DIR_ENV, atomic_write_json, provenance


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


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m unrolling_lib", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list-chapters", help="chapters with their parameters")
    run = sub.add_parser("run-chapter", help="execute one chapter with papermill")
    run.add_argument("chapter", type=Path)
    run.add_argument("--profile", default="quick", help=f"one of {', '.join(PROFILES)}")
    run.add_argument("-p", "--parameter", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"))
    run.add_argument("--out", type=Path, default=None, help="folder for runs (default: <repo>/runs)")
    sub.add_parser("stage-assets", help="copy plotly.js and MathJax into the book")
    sub.add_parser("sync-chapters", help="rewrite Colab links and install cells from _config.yml")
    bench = sub.add_parser("bench", help="run a benchmark")
    bench.add_argument("name")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "list-chapters":
            print(list_chapters())
        elif args.command == "run-chapter":
            params = {name: parse_value(value) for name, value in args.parameter}
            folder = run_chapter(args.chapter, args.profile, params, args.out)
            print(f"executed notebook and results: {folder}")
        elif args.command == "stage-assets":
            for path in book.stage_assets():
                print(f"staged {path}")
        elif args.command == "sync-chapters":
            changed = book.sync_chapters()
            print(f"updated {len(changed)} chapter(s)" + "".join(f"\n  {p}" for p in changed))
        elif args.command == "bench":
            from .bench import run_bench

            run_bench(args.name)
    except (ParameterError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0
