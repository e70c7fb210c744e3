"""The paper's reference tables are package data: a non-editable install of the wheel carries them."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile

from packaging_support import build_wheel

_READ = """
import sys, unrolling_lib
from unrolling_lib.data import paper_table, paper_table_source
assert unrolling_lib.__file__.startswith(sys.argv[1]), unrolling_lib.__file__
print([len(paper_table(n)) for n in ("table1", "table3", "table4")], "Table 1" in paper_table_source("table1"))
"""


def test_the_wheel_carries_the_paper_tables_and_an_install_reads_them(tmp_path) -> None:
    wheel = build_wheel(tmp_path)
    names = zipfile.ZipFile(wheel).namelist()
    assert {f"unrolling_lib/data/paper/table{k}.csv" for k in (1, 3, 4)} <= set(names)
    # Install the wheel (not editable) into its own folder and read the tables from there, away from the
    # sources: the dependencies come from this environment, the package and its data from the install.
    target = tmp_path / "installed"
    done = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target),
                           str(wheel)], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    env = {**os.environ, "PYTHONPATH": str(target)}
    out = subprocess.run([sys.executable, "-c", _READ, str(target)], capture_output=True, text=True, env=env,
                         cwd=tmp_path, check=False)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip() == "[12, 72, 144] True"
