"""The chapters run with the library alone: a fresh venv holding only a wheel of this package (what every chapter's
Colab cell installs) plus a kernel to execute them, every chapter at the smoke profile (the same code path as the
book's quick build, in seconds).

The venv is built with Python 3.12 when the machine has it (Colab runs 3.12; found on the PATH or under pyenv),
else with this interpreter: ``make test`` already runs the chapters with this one, so Colab's version is the one
worth the minutes. Opt-in (``UNROLLING_LEAN_INSTALL=1``, a few minutes and a few GB of disk: torch is installed
again, for 3.12 downloaded once into pip's cache); CI runs it after ``make test``.
"""

import glob
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from packaging_support import build_wheel

from unrolling_lib.book import chapters
from unrolling_lib.book.build import parameterize_chapters

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.skipif(os.environ.get("UNROLLING_LEAN_INSTALL", "") in ("", "0"),
                                reason="slow: set UNROLLING_LEAN_INSTALL=1 to run")

# Executes one notebook with nbclient inside the lean venv, with the book's own cell limit.
_EXECUTE = """
import sys, nbformat
from nbclient import NotebookClient
nb = nbformat.read(sys.argv[1], as_version=4)
NotebookClient(nb, timeout=600, startup_timeout=120, kernel_name="python3",
               resources={"metadata": {"path": sys.argv[2]}}).execute()
print("executed", sys.argv[1])
"""


def _python312() -> str | None:
    """A Python 3.12 interpreter (Colab's version), on the PATH or under pyenv; None if the machine has none."""
    found = shutil.which("python3.12")
    pyenv = sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/3.12*/bin/python3.12")))
    candidates = ([found] if found else []) + pyenv
    for path in candidates:
        ok = subprocess.run([path, "-c", "import sys, venv; assert sys.version_info[:2] == (3, 12)"],
                            capture_output=True, check=False)
        if ok.returncode == 0:
            return path
    return None


def _run(args: list[str], **kw) -> subprocess.CompletedProcess:
    return subprocess.run(args, capture_output=True, text=True, check=False, **kw)


def test_every_chapter_runs_with_the_package_alone(tmp_path):
    base = _python312() or sys.executable
    interpreter = "3.12" if base != sys.executable else "this Python"
    wheel = build_wheel(tmp_path)
    env_dir = tmp_path / "lean"
    made = _run([base, "-m", "venv", str(env_dir)])
    assert made.returncode == 0, made.stderr[-2000:]
    python = env_dir / "bin" / "python"
    # the package as the Colab cells install it (with the extras some chapters name), and only what executing a
    # notebook needs besides
    import nbformat

    extras = sorted({e for path in chapters.chapters(ROOT) for e in chapters.chapter_extras(nbformat.read(path, 4))})
    package = f"{wheel}[{','.join(extras)}]" if extras else str(wheel)
    installed = _run([str(python), "-m", "pip", "install", "-q", package, "ipykernel", "nbclient"])
    assert installed.returncode == 0, installed.stderr[-2000:]
    tooling = _run([str(python), "-c", "import importlib.util as u; print([m for m in ('papermill', 'jupyter_book', "
                                       "'pytest') if u.find_spec(m)])"])
    assert tooling.stdout.strip() == "[]"  # the book's tooling is not there
    tables = _run([str(python), "-c", "from unrolling_lib.data import paper_table as p; "
                                      "print([len(p(n)) for n in ('table1', 'table2', 'table3', 'table4')])"],
                  cwd=tmp_path)
    assert tables.stdout.strip() == "[12, 7, 72, 144]", tables.stderr[-2000:]  # the package data came along
    copies = parameterize_chapters(tmp_path / "smoke", {"profile": "smoke"}, ROOT)
    assert len(copies) == len(chapters.chapters(ROOT))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("UNROLLING_", "VIRTUAL_ENV"))}
    env.update(PATH=f"{env_dir / 'bin'}{os.pathsep}{env.get('PATH', '')}", UNROLLING_HEADLESS="1")
    for copy in copies:
        out = _run([str(python), "-c", _EXECUTE, str(copy), str(copy.parent)], env=env, cwd=tmp_path)
        assert out.returncode == 0, f"{interpreter}: {copy.name}: {out.stderr[-3000:]}"
