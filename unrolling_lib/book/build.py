"""Building and checking the book: the build with its per-chapter timing table, and parameterised chapter copies.

- :func:`execute_chapters`: every chapter executed afresh at the quick profile, on as many kernels at once as
  there are CPU cores (most chapters run single-threaded), the slowest first, into the jupyter-cache that the
  build reads (``execute_notebooks: "cache"`` in ``_config.yml``); the cache is emptied first, so every build
  executes every chapter.
- :func:`build_book`: :func:`execute_chapters`, then ``jupyter-book build`` (warnings fatal), its output
  streamed as it comes; a chapter that failed to execute is executed again by the build itself, which then
  fails with that chapter's error. At the end it prints how long each chapter took and writes the times to
  ``_build/chapter_times.json``.
- :func:`parameterize_chapters`: copies of every chapter with papermill's injected-parameters cell (e.g.
  ``profile="smoke"``), in a folder of their own, for nbval to execute; the chapters themselves are untouched.
- :data:`BUDGETS`: seconds a chapter may take per profile (a test fails past 3× of them).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

from ..storage import atomic_write_json
from ..validation import ParameterError
from . import chapters as book
from .profiles import PROFILES

__all__ = ["BUDGETS", "CACHE_DIR", "TIMES_FILE", "build_book", "chapter_times", "execute_chapters", "load_times",
           "parameterize_chapters", "times_table"]

BUDGETS = {"quick": 120.0, "smoke": 15.0}  # seconds per chapter on 2 cores
TIMES_FILE = Path("_build") / "chapter_times.json"
CACHE_DIR = Path("_build") / ".jupyter_cache"  # jupyter-book's default execution cache
CELL_TIMEOUT = 600  # seconds per cell, as execute.timeout in _config.yml
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


def _execute(path: str, timeout: int, threads: int) -> tuple[str, Any, float, str | None]:
    """One chapter in a fresh kernel, its folder as the working directory, with ``threads`` CPU threads for its
    numerical libraries (kernels that each take every core slow each other down many times over): (path,
    executed notebook or None, seconds, the error's last lines or None)."""
    import nbformat
    from nbclient import NotebookClient

    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[name] = str(threads)  # this worker process's environment, which its kernel inherits

    nb = nbformat.read(path, as_version=4)
    start = time.perf_counter()
    try:
        NotebookClient(nb, timeout=timeout, kernel_name="python3",
                       resources={"metadata": {"path": str(Path(path).parent)}}).execute()
    except Exception as err:  # noqa: BLE001 - reported, and the build then fails on the same chapter
        return path, None, time.perf_counter() - start, str(err)[-2000:]
    return path, nb, time.perf_counter() - start, None


def _outputs_into(path: str, executed: Any) -> Any:
    """The chapter as committed, with the executed copy's outputs and execution counts: the cache is keyed by
    the notebook the build reads, and executing adds metadata that would change the key."""
    import nbformat

    nb = nbformat.read(path, as_version=4)
    for cell, done in zip(nb.cells, executed.cells, strict=True):
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = done.outputs, done.execution_count
    return nb


def execute_chapters(root: Path | str | None = None, *, workers: int | None = None,
                     timeout: int = CELL_TIMEOUT) -> dict[str, float]:
    """Execute every chapter (module docstring) into :data:`CACHE_DIR`, ``workers`` kernels at once (default:
    the CPU count), the slowest chapters of the last build first; return chapter → seconds for those that ran
    to the end. Failures are printed and left out of the cache."""
    from jupyter_cache import get_cache
    from jupyter_cache.base import CacheBundleIn

    base = book.find_root(root)
    folder = base / CACHE_DIR
    if folder.exists():
        shutil.rmtree(folder)
    cache = get_cache(str(folder))
    try:
        last = load_times(base).get("chapters", {})
    except (FileNotFoundError, json.JSONDecodeError):
        last = {}
    paths = sorted(book.chapters(base), key=lambda p: -last.get(str(p.relative_to(base)), 0.0))
    cores = os.cpu_count() or 1
    workers = workers or cores
    threads = max(1, cores // workers)
    print(f"executing {len(paths)} chapters, {workers} at a time, {threads} thread(s) each", flush=True)
    times = {}
    with ProcessPoolExecutor(max_workers=workers) as pool:
        jobs = [pool.submit(_execute, str(p), timeout, threads) for p in paths]
        for job in as_completed(jobs):
            path, nb, seconds, error = job.result()
            name = str(Path(path).relative_to(base))
            if error is not None:
                print(f"{name}: failed after {seconds:.0f} s; the build will run it again and report\n{error}",
                      flush=True)
                continue
            cache.cache_notebook_bundle(CacheBundleIn(_outputs_into(path, nb), path,
                                                      data={"execution_seconds": seconds}), overwrite=True)
            times[name] = round(seconds, 2)
            print(f"{name}: executed in {seconds:.1f} s", flush=True)
    return times


def build_book(root: Path | str | None = None, *, extra_args: list[str] | None = None) -> int:
    """:func:`execute_chapters`, then ``jupyter-book build . --all -W -n --keep-going`` in the book root,
    streaming its output; then print the chapters' execution seconds and write them to :data:`TIMES_FILE`.
    Returns the build's exit code."""
    base = book.find_root(root)
    command = [str(Path(sys.executable).with_name("jupyter-book")), "build", ".", "--all", "-W", "-n",
               "--keep-going", *(extra_args or [])]
    start = time.perf_counter()
    executed = execute_chapters(base)
    lines: list[str] = []
    with subprocess.Popen(command, cwd=base, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          bufsize=1) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            sys.stdout.write(line)
            lines.append(line)
    times = {**executed, **chapter_times("".join(lines), base)}  # the build's own runs: chapters that failed above
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
