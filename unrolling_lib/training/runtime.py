"""Where and how training runs: the device, seeds, deterministic kernels and CPU threads.

- :func:`pick_device`: ``auto`` picks cuda, then mps, then cpu; an explicit device must be available.
- :func:`seed_everything`: Python, NumPy and torch from one seed (the one call a chapter's set-up makes).
- :func:`cpu_threads`: torch's CPU threads inside a block.
- :func:`deterministic_mode`: deterministic kernels (and optionally a forked, seeded torch RNG) inside a block.
- :func:`bars_wanted`: whether to show a progress bar now (from :mod:`unrolling_lib.progress`).
"""

from __future__ import annotations

import os
import random
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import torch

from ..progress import bars_wanted
from ..validation import ParameterError, check_choice, check_int

__all__ = ["DEVICES", "bars_wanted", "cpu_threads", "deterministic_mode", "pick_device", "quiet_jvp", "seed_everything"]

DEVICES = ("auto", "cpu", "cuda", "mps")


def pick_device(device: str | torch.device = "auto") -> torch.device:
    """``auto`` picks cuda, then mps, then cpu; an explicit device must be available (a ``torch.device`` is
    returned as it is)."""
    if isinstance(device, torch.device):
        return device
    check_choice("device", device, DEVICES)
    cuda = torch.cuda.is_available()
    mps = getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()
    if device == "auto":
        return torch.device("cuda" if cuda else "mps" if mps else "cpu")
    if (device == "cuda" and not cuda) or (device == "mps" and not mps):
        raise ParameterError(f"device={device!r} is not available here; use 'auto' or 'cpu'")
    return torch.device(device)


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (all devices)."""
    seed = check_int("seed", seed, 0)
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    os.environ.setdefault("PYTHONHASHSEED", str(seed))


@contextmanager
def cpu_threads(threads: int | None) -> Iterator[None]:
    """Use ``threads`` CPU threads for torch inside the block (``None``: leave the setting alone).

    Small models gain nothing from several threads, and when the cores are shared with other work, idle
    threads spinning for their share can make each step many times slower; one thread avoids both.
    """
    if threads is None:
        yield
        return
    threads = check_int("threads", threads, 1)
    saved = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(saved)


@contextmanager
def deterministic_mode(seed: int | None = None, *, threads: int | None = None) -> Iterator[None]:
    """Deterministic kernels inside the block; everything is restored on exit.

    Turns on ``torch.use_deterministic_algorithms`` (an operation without a deterministic kernel raises),
    cuDNN's deterministic mode without benchmarking, and the cuBLAS workspace setting CUDA needs for it.
    With ``seed``, torch's random state is forked and seeded (dropout and other random layers then repeat);
    with ``threads``, torch uses that many CPU threads inside the block. On a CPU, the same seed and the
    same thread count give bit-identical weights; on a GPU, determinism is what the kernels promise.
    """
    if seed is not None:
        seed = check_int("seed", seed, 0)
    saved = (torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled(),
             torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark,
             os.environ.get("CUBLAS_WORKSPACE_CONFIG"))
    devices = list(range(torch.cuda.device_count())) if torch.cuda.is_initialized() else []
    try:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False
        with cpu_threads(threads), torch.random.fork_rng(devices=devices, enabled=seed is not None):
            if seed is not None:
                torch.manual_seed(seed)
            yield
    finally:
        torch.use_deterministic_algorithms(saved[0], warn_only=saved[1])
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = saved[2], saved[3]
        if saved[4] is None:
            os.environ.pop("CUBLAS_WORKSPACE_CONFIG", None)
        else:
            os.environ["CUBLAS_WORKSPACE_CONFIG"] = saved[4]


@contextmanager
def quiet_jvp() -> Iterator[None]:
    """Silence the FutureWarning torch itself emits (``torch.jit.script`` is deprecated) the first time
    ``torch.func.jvp`` loads its decompositions: a message about torch's internals, not about the caller's
    computation. Every other warning passes."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*torch\.jit\.script.*deprecated", category=FutureWarning)
        yield
