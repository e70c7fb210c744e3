"""Building and checking the book: the build with its per-chapter timing table, and parameterised chapter copies.

- :func:`build_book`: ``jupyter-book build`` (every chapter executed at the quick profile, warnings fatal),
  its output streamed as it comes; at the end it prints how long each chapter took to execute (read from the
  build's own execution reports) and writes them to ``_build/chapter_times.json``.
- :func:`parameterize_chapters`: copies of every chapter with papermill's injected-parameters cell (e.g.
  ``profile="smoke"``), in a folder of their own, for nbval to execute; the chapters themselves are untouched.
- :data:`BUDGETS`: seconds a chapter may take per profile (a test fails past 3× of them).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from ..storage import atomic_write_json
from ..validation import ParameterError
from . import chapters as book
from .profiles import PROFILES

__all__ = ["BUDGETS", "TIMES_FILE", "build_book", "chapter_times", "load_times", "parameterize_chapters", "times_table"]

BUDGETS = {"quick": 120.0, "smoke": 15.0}  # seconds per chapter on 2 cores
TIMES_FILE = Path("_build") / "chapter_times.json"
_EXECUTED = re.compile(r"(?P<path>\S+\.ipynb): Executed notebook in (?P<seconds>[0-9.]+) seconds")


def chapter_times(log: str, root: Path | str | None = None) -> dict[str, float]:
    """Chapter (path relative to the book root) → execution seconds, from a build log's execution reports
    (myst-nb's "<notebook>: Executed notebook in N seconds" lines)."""
    base = book.find_root(root)
    times = {}
    for match in _EXECUTED.finditer(log):
        path = Path(match["path"])
        name = str(path.relative_to(base)) if path.is_absolute() and path.is_relative_to(base) else str(path)
        times[name] = float(match["seconds"])
    return times


def times_table(times: dict[str, float], budget: float) -> str:
    """A plain-text table of chapter seconds against a budget, slowest first."""
    width = max((len(name) for name in times), default=7)
    lines = [f"{'chapter':<{width}}  seconds  of budget ({budget:g} s)"]
    for name, seconds in sorted(times.items(), key=lambda kv: -kv[1]):
        lines.append(f"{name:<{width}}  {seconds:7.1f}  {seconds / budget:6.0%}")
    return "\n".join(lines)


def build_book(root: Path | str | None = None, *, extra_args: list[str] | None = None) -> int:
    """Run ``jupyter-book build . --all -W -n --keep-going`` in the book root, streaming its output; then
    print the chapters' execution seconds and write them to :data:`TIMES_FILE`. Returns the build's exit code.
    """
    base = book.find_root(root)
    command = [str(Path(sys.executable).with_name("jupyter-book")), "build", ".", "--all", "-W", "-n",
               "--keep-going", *(extra_args or [])]
    start = time.perf_counter()
    lines: list[str] = []
    with subprocess.Popen(command, cwd=base, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          bufsize=1) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            sys.stdout.write(line)
            lines.append(line)
    times = chapter_times("".join(lines), base)
    target = base / TIMES_FILE
    target.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(target, {"profile": "quick", "budget_seconds": BUDGETS["quick"], "chapters": times,
                               "build_seconds": round(time.perf_counter() - start, 1)})
    print(f"\nchapter execution times (quick profile), build {time.perf_counter() - start:.0f} s in all:")
    print(times_table(times, BUDGETS["quick"]))
    return proc.returncode


def parameterize_chapters(out: Path | str, parameters: dict[str, Any], root: Path | str | None = None
                          ) -> list[Path]:
    """Write a copy of every chapter into ``out`` (emptied first) with papermill's injected-parameters cell
    after its ``parameters`` cell, e.g. ``{"profile": "smoke"}``; the chapters themselves are not changed."""
    import nbformat
    from papermill.iorw import load_notebook_node
    from papermill.parameterize import parameterize_notebook

    profile = parameters.get("profile")
    if profile is not None and profile not in PROFILES:
        raise ParameterError(f"profile={profile!r} is not allowed; choose one of {', '.join(PROFILES)}")
    target = Path(out)
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    written = []
    for chapter in book.chapters(root):
        path = target / chapter.name
        nb = parameterize_notebook(load_notebook_node(str(chapter)), parameters)
        nbformat.write(nb, path)
        written.append(path)
    return written


def load_times(root: Path | str | None = None) -> dict[str, Any]:
    """What the last :func:`build_book` wrote to :data:`TIMES_FILE` (FileNotFoundError if none)."""
    return json.loads((book.find_root(root) / TIMES_FILE).read_text())
