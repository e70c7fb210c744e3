"""Where a chapter run keeps its results.

A chapter started by ``python -m unrolling_lib run-chapter`` gets ``UNROLLING_RUN_DIR`` in its kernel's
environment; :func:`save_table` writes there (atomically, with a provenance sidecar, through
:mod:`unrolling_lib.storage`) so an interrupted run never leaves a half-written file behind.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pandas as pd

from ..storage import write_table

RUN_DIR_ENV = "UNROLLING_RUN_DIR"

__all__ = ["RUN_DIR_ENV", "run_dir", "save_table"]


def run_dir() -> Path | None:
    """The folder of the current chapter run, if one was started by the chapter runner."""
    value = os.environ.get(RUN_DIR_ENV)
    return Path(value) if value else None


def save_table(df: pd.DataFrame, name: str, folder: Path | str | None = None, **meta: Any) -> Path | None:
    """Save a results table as ``<name>.csv`` with a ``.json`` provenance sidecar.

    ``folder`` defaults to the chapter run's folder; with neither, nothing is written and ``None`` returned.
    """
    target = Path(folder) if folder is not None else run_dir()
    if target is None:
        return None
    return write_table(df, target / f"{name}.csv", **meta)
