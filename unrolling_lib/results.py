"""Results on disk: atomic writes, provenance, and the folder a chapter run writes into.

A chapter started by ``python -m unrolling_lib run-chapter`` gets ``UNROLLING_RUN_DIR`` in its kernel's
environment; ``save_table`` writes there (atomically, with a provenance sidecar) so an interrupted run never
leaves a half-written file behind.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pandas as pd

RUN_DIR_ENV = "UNROLLING_RUN_DIR"

__all__ = ["RUN_DIR_ENV", "atomic_write_text", "atomic_write_json", "save_table", "load_table", "provenance",
           "run_dir"]


def atomic_write_text(path: Path | str, text: str) -> Path:
    """Write ``text`` to a temporary file beside ``path``, then rename it into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_json(path: Path | str, data: Any) -> Path:
    return atomic_write_text(path, json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")


def _git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
                             check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def provenance(**extra: Any) -> dict[str, Any]:
    """Who made a result and how: time, library version, git commit, Python and torch versions."""
    import torch

    from . import __version__

    return {
        "time": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "unrolling_lib": __version__,
        "git_commit": _git_commit(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        **extra,
    }


def run_dir() -> Path | None:
    """The folder of the current chapter run, if one was started by the chapter runner."""
    value = os.environ.get(RUN_DIR_ENV)
    return Path(value) if value else None


def save_table(df: pd.DataFrame, name: str, folder: Path | str | None = None, **meta: Any) -> Path | None:
    """Save a results table as CSV with a ``.json`` provenance sidecar.

    ``folder`` defaults to the chapter run's folder; with neither, nothing is written and ``None`` returned.
    """
    target = Path(folder) if folder is not None else run_dir()
    if target is None:
        return None
    path = target / f"{name}.csv"
    atomic_write_text(path, df.to_csv(index=False))
    atomic_write_json(path.with_suffix(".json"), provenance(rows=len(df), **meta))
    return path


def load_table(path: Path | str) -> pd.DataFrame:
    return pd.read_csv(path)
