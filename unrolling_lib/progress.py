"""Progress bars: whether to show one now (every loop of the library asks this one function)."""

from __future__ import annotations

import os

__all__ = ["bars_wanted"]


def bars_wanted(progress: bool) -> bool:
    """``progress``, unless tqdm's own ``TQDM_DISABLE`` is set now (tqdm reads it only when it is imported,
    so a chapter's set-up that sets it later would otherwise not count; a static page cannot animate a bar)."""
    return bool(progress) and os.environ.get("TQDM_DISABLE", "").lower() in ("", "0", "false")
