"""The chapters run with the library alone: a fresh venv holding only a wheel of this package (what every chapter's
Colab cell installs) plus a kernel to execute them, every chapter at the quick profile.

Opt-in (``UNROLLING_LEAN_INSTALL=1``, a few minutes and a few GB of disk: torch is installed again); CI runs it
after ``make test``.
"""

import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

import pytest

from unrolling_lib.book import chapters

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


def _run(args: list[str], **kw) -> subprocess.CompletedProcess:
    return subprocess.run(args, capture_output=True, text=True, check=False, **kw)


def test_every_chapter_runs_with_the_package_alone(tmp_path):
    source = tmp_path / "source"  # a copy: building writes build/ and *.egg-info beside the sources
    shutil.copytree(ROOT / "unrolling_lib", source / "unrolling_lib", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, source / name)
    wheel_dir = tmp_path / "wheel"
    built = _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                  str(wheel_dir), str(source)])
    assert built.returncode == 0, built.stderr[-2000:]
    (wheel,) = wheel_dir.glob("unrolling_lib-*.whl")
    env_dir = tmp_path / "lean"
    venv.create(env_dir, with_pip=True)
    python = env_dir / "bin" / "python"
    # the package as the Colab cell installs it, and only what executing a notebook needs besides
    installed = _run([str(python), "-m", "pip", "install", "-q", str(wheel), "ipykernel", "nbclient"])
    assert installed.returncode == 0, installed.stderr[-2000:]
    extras = _run([str(python), "-c", "import importlib.util as u; print([m for m in ('papermill', 'jupyter_book', "
                                      "'pytest') if u.find_spec(m)])"])
    assert extras.stdout.strip() == "[]"  # the book's tooling is not there
    env = {k: v for k, v in os.environ.items() if not k.startswith(("UNROLLING_", "VIRTUAL_ENV"))}
    env.update(PATH=f"{env_dir / 'bin'}{os.pathsep}{env.get('PATH', '')}", UNROLLING_HEADLESS="1")
    for chapter in chapters.chapters(ROOT):
        out = _run([str(python), "-c", _EXECUTE, str(chapter), str(chapter.parent)], env=env, cwd=tmp_path)
        assert out.returncode == 0, f"{chapter.name}: {out.stderr[-3000:]}"
