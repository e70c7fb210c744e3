"""Building this package's wheel from a copy of its sources, for the tests that install it."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def build_wheel(tmp_path: Path) -> Path:
    """A wheel of the package (no dependencies), built from a copy: building writes build/ and *.egg-info
    beside the sources."""
    source = tmp_path / "source"
    shutil.copytree(ROOT / "unrolling_lib", source / "unrolling_lib", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, source / name)
    wheel_dir = tmp_path / "wheel"
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                            str(wheel_dir), str(source)], capture_output=True, text=True, check=False)
    assert built.returncode == 0, built.stderr[-2000:]
    (wheel,) = wheel_dir.glob("unrolling_lib-*.whl")
    return wheel
