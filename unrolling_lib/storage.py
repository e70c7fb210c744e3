"""Results on disk that survive an interruption: atomic writes, tables with a provenance sidecar.

Every write goes to a temporary file beside its target and is renamed into place, so a run stopped at any
moment leaves either the old file or the new one, never half of one. :func:`write_table` saves a DataFrame as
CSV with a ``.json`` sidecar that records who made it and how (:func:`provenance`). Long experiments write each
finished piece this way and skip it when they are resumed.

The ground layer: imports nothing of the package but :mod:`unrolling_lib.validation`.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import tempfile
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

import pandas as pd

from .validation import ParameterError

__all__ = ["atomic_torch_save", "atomic_write_json", "atomic_write_text", "claim_folder", "provenance", "read_table",
           "write_table"]


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


def _atomic(path: Path | str, write: Any) -> Path:
    """Call ``write(tmp_path)`` on a temporary file beside ``path``, then rename it into place.

    The file gets the usual permissions of a new file (0666 less the umask), not ``mkstemp``'s private 0600.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path: Path | str, text: str) -> Path:
    """Write ``text`` to ``path`` atomically."""
    return _atomic(path, lambda tmp: Path(tmp).write_text(text))


def atomic_write_json(path: Path | str, data: Any) -> Path:
    """Write ``data`` as indented, key-sorted JSON to ``path`` atomically."""
    return atomic_write_text(path, json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")


def atomic_torch_save(obj: Any, path: Path | str) -> Path:
    """``torch.save(obj)`` to ``path`` atomically (e.g. a checkpoint of pre-trained weights)."""
    import torch

    return _atomic(path, lambda tmp: torch.save(obj, tmp))


def _git(args: list[str], folder: Path) -> str | None:
    try:
        out = subprocess.run(["git", "-C", str(folder), *args], capture_output=True, text=True, timeout=5,
                             check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def _source_folder() -> Path:
    """Where the library's own source is (a git checkout when installed editable)."""
    return Path(__file__).resolve().parent


def _version() -> str:
    try:
        return metadata.version("unrolling-lib")
    except metadata.PackageNotFoundError:  # running from a source tree that was never installed
        return "unknown"


def provenance(*, repository: Path | str | None = None, **extra: Any) -> dict[str, Any]:
    """Who made a result and how: time, library version, git commit (of ``repository``, by default the
    checkout the library itself lives in) and whether it had uncommitted changes, Python and torch versions,
    plus ``extra``. Outside a git checkout the commit is ``None``."""
    import torch

    folder = Path(repository) if repository is not None else _source_folder()
    commit = _git(["rev-parse", "HEAD"], folder)
    status = _git(["status", "--porcelain", "--untracked-files=no"], folder) if commit else None
    return {
        "time": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "unrolling_lib": _version(),
        "git_commit": commit,
        "git_dirty": bool(status) if commit else None,
        "python": platform.python_version(),
        "torch": torch.__version__,
        **extra,
    }


def write_table(df: pd.DataFrame, path: Path | str, **meta: Any) -> Path:
    """Save ``df`` as CSV at ``path`` with a ``.json`` provenance sidecar (``meta`` added to it), atomically."""
    path = Path(path)
    atomic_write_text(path, df.to_csv(index=False))
    atomic_write_json(path.with_suffix(".json"), provenance(rows=len(df), **meta))
    return path


def claim_folder(folder: Path | str, params: dict[str, Any], *, name: str = "folder",
                 stamp: str = "params.json") -> Path:
    """Make ``folder`` the home of results of ``params``: record them in ``folder/stamp`` on first use, and refuse
    (naming the parameter ``name`` and the keys that differ) a folder that already holds results of others, so a
    resumed run never mixes two settings. Call it only once every other check has passed."""
    folder = Path(folder)
    path = folder / stamp
    wanted = json.loads(json.dumps(params, default=str))
    if path.exists():
        held = json.loads(path.read_text())
        if held != wanted:
            changed = sorted(k for k in set(held) | set(wanted) if held.get(k) != wanted.get(k))
            raise ParameterError(f"{name}={str(folder)!r} holds results of other parameters (they differ in "
                                 f"{', '.join(changed)}); use another folder")
    else:
        atomic_write_json(path, wanted)
    return folder


def read_table(path: Path | str) -> pd.DataFrame:
    """A table written by :func:`write_table`."""
    return pd.read_csv(path)
