"""Data sets as tensors, and the fixed batch orders that SGD walks through.

Every data set here is returned as a :class:`TensorData`: the whole split as two tensors (images ``x``,
int64 labels ``y``), already normalised, with no augmentation. The theory of the paper (§5) describes
plain SGD over a fixed sequence of batches; random crops or flips would change the inputs between epochs
and break the correspondence between a training run and the retraining it is compared against.

- ``digits``: scikit-learn's handwritten digits (1,797 real 8×8 images that ship with the package, so
  they work offline). The quick profile's data.
- ``synthetic_cifar``: CIFAR-shaped (3×32×32) tensors with class-dependent means, only to exercise the
  ResNet-18 / VGG-19 code without a download.
- ``cifar10`` / ``cifar100``: the real data sets the paper uses (§6.1, §7), through torchvision. They
  need one download; without network and without the files on disk the loader says so in one line.

:class:`BatchOrder` is the ordering *I* of §4.1: which samples make up the batch of every step. It is
seeded, replayable, can be saved and loaded, and ``order.without(i)`` is the same order with step ``i``
skipped — what the naively retrained model M′ of §8.3 is trained on.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import math
import os
import socket
import urllib.error
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .profiles import ParameterError, check_choice, check_int

__all__ = [
    "DATASETS",
    "DATA_ENV_VAR",
    "CIFAR_STATS",
    "BatchOrder",
    "DatasetUnavailableError",
    "TensorData",
    "batch_tensors",
    "default_data_root",
    "load_cifar",
    "load_dataset",
    "load_digits_dataset",
    "synthetic_cifar",
]

DATASETS = ("digits", "synthetic_cifar", "cifar10", "cifar100")
DATA_ENV_VAR = "UNROLLING_DATA"

# Per-channel mean and std used by the paper's released code (the usual constants for each data set).
CIFAR_STATS: dict[str, tuple[tuple[float, float, float], tuple[float, float, float]]] = {
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010)),
    "cifar100": ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
}

# Tags that keep the seeded random streams for different purposes apart.
_SUBSET_TAG, _EPOCH_TAG = 0x5B5E7, 0xE90C4

# Default sizes of the synthetic CIFAR-shaped splits.
SYNTHETIC_SIZES = {True: 1024, False: 256}


class DatasetUnavailableError(RuntimeError):
    """A data set that is neither on disk nor downloadable right now (no network, or a bad download)."""


# ---------------------------------------------------------------------------------------------------
# Argument checks: one line that names the parameter and what is allowed.
# ---------------------------------------------------------------------------------------------------


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


def _subset_indices(n: int, subset: int | None, seed: int) -> np.ndarray:
    """``subset`` sample positions out of ``n``, chosen by ``seed`` and kept in their original order."""
    if subset is None:
        return np.arange(n, dtype=np.int64)
    subset = check_int("subset", subset, 1, n)
    chosen = np.random.default_rng([_SUBSET_TAG, seed]).choice(n, size=subset, replace=False)
    return np.sort(chosen).astype(np.int64)


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
    from sklearn.model_selection import train_test_split

    if not isinstance(test_fraction, (int, float)) or not 0.0 < float(test_fraction) < 1.0:
        raise ParameterError(f"test_fraction={test_fraction!r} is not allowed; use a float in (0, 1)")
    check_int("seed", seed, 0)
    check_int("split_seed", split_seed, 0)
    bunch = load_digits()
    images = bunch.images.astype(np.float64) / 16.0
    labels = bunch.target.astype(np.int64)
    positions = np.arange(len(labels))
    train_pos, test_pos = train_test_split(
        positions, test_size=float(test_fraction), random_state=split_seed, stratify=labels
    )
    train_pos, test_pos = np.sort(train_pos), np.sort(test_pos)
    mean, std = images[train_pos].mean(), images[train_pos].std()
    pos = train_pos if train else test_pos
    pos = pos[_subset_indices(len(pos), subset, seed)]
    x = torch.from_numpy((images[pos] - mean) / std).unsqueeze(1).to(dtype)
    y = torch.from_numpy(labels[pos])
    return TensorData(x, y, 10, "digits", tuple(str(c) for c in range(10)))


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


def _open_torchvision_cifar(name: str, root: Path, train: bool, download: bool) -> Any:
    """The torchvision data set object, or a one-line :class:`DatasetUnavailableError`."""
    import torchvision

    cls = torchvision.datasets.CIFAR10 if name == "cifar10" else torchvision.datasets.CIFAR100
    label = "CIFAR-10" if name == "cifar10" else "CIFAR-100"
    hint = (
        f"put {cls.filename} (from {cls.url}) or its extracted folder {cls.base_folder}/ in {root}, "
        f"or set the {DATA_ENV_VAR} environment variable (or root=) to a folder that has it"
    )
    try:
        return cls(root=str(root), train=train, download=download)
    except _NETWORK_ERRORS as err:
        reason = getattr(err, "reason", err)
        msg = f"{label} is not in {root} and could not be downloaded (no network: {reason}); {hint}"
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
) -> TensorData:
    """CIFAR-10 or CIFAR-100 (§6.1) as (N, 3, 32, 32) tensors, normalised with :data:`CIFAR_STATS`.

    No augmentation (the theory's plain SGD). ``root`` defaults to :func:`default_data_root`; the files
    are downloaded there once (about 170 MB) unless ``download=False``. Without the files and without
    network this raises :class:`DatasetUnavailableError` with what to put where. ``subset`` keeps that
    many images of the split, chosen by ``seed`` and kept in their original order. The full training
    split takes about 600 MB as float32.
    """
    name = check_choice("name", name, ("cifar10", "cifar100"))
    seed = check_int("seed", seed, 0)
    root_path = Path(root).expanduser() if root is not None else default_data_root()
    dataset = _open_torchvision_cifar(name, root_path, bool(train), bool(download))
    images = np.asarray(dataset.data)  # (N, 32, 32, 3) uint8
    keep = _subset_indices(len(images), subset, seed)
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
    ``download`` for CIFAR only.
    """
    name = check_choice("name", name, DATASETS)
    if name == "digits":
        return load_digits_dataset(train=train, subset=subset, seed=seed, dtype=dtype)
    if name == "synthetic_cifar":
        size = SYNTHETIC_SIZES[bool(train)] if n is None else n
        data = synthetic_cifar(size, num_classes or 10, seed, train=train, dtype=dtype)
        return data if subset is None else data.select(_subset_indices(len(data), subset, seed))
    return load_cifar(name, root, train=train, download=download, subset=subset, seed=seed, dtype=dtype)


# ---------------------------------------------------------------------------------------------------
# Batch orders: the ordering I of §4.1
# ---------------------------------------------------------------------------------------------------

_FORMAT = "unrolling_lib.BatchOrder"
_FORMAT_VERSION = 1


class BatchOrder:
    """A fixed sequence of index batches: which samples SGD uses at each step (the ordering *I*, §4.1).

    ``BatchOrder(n, batch_size, epochs=2, seed=0)`` shuffles the ``n`` sample positions afresh at the start
    of every epoch, with a generator seeded by ``(seed, epoch)``, and cuts each permutation into batches.
    With ``drop_last=True`` (the default) every batch has exactly ``batch_size`` samples and the
    ``n % batch_size`` samples left at the end of an epoch's permutation are not used in that epoch (a
    different few each epoch); with ``drop_last=False`` the last batch of each epoch is smaller.
    ``steps=t`` asks for exactly ``t`` steps instead of whole epochs (the last epoch may be partial).
    ``subset=k`` draws the batches from ``k`` of the ``n`` samples only, chosen by ``seed``; batches hold
    positions in the full data set either way.

    The order is computed lazily (one permutation per epoch), so long runs cost no memory. Batches are
    NumPy int64 arrays. ``order[i]`` is the batch of step ``i``; iterating yields them in order.
    ``order.without(i)`` is the same order with step ``i`` skipped and everything else kept in place.
    ``save``/``load`` replay an order exactly (a ``.json`` file keeps the recipe plus a checksum of the
    batches; a ``.npz`` file keeps the batches themselves).
    """

    def __init__(
        self,
        n: int,
        batch_size: int,
        *,
        epochs: int | None = None,
        steps: int | None = None,
        seed: int = 0,
        drop_last: bool = True,
        subset: int | None = None,
    ) -> None:
        self.n = check_int("n", n, 1)
        self.subset = None if subset is None else check_int("subset", subset, 1, self.n)
        pool_size = self.n if self.subset is None else self.subset
        self.batch_size = check_int("batch_size", batch_size, 1, pool_size)
        self.seed = check_int("seed", seed, 0)
        if not isinstance(drop_last, bool):
            raise ParameterError(f"drop_last={drop_last!r} is not allowed; use True or False")
        self.drop_last = drop_last
        if epochs is not None and steps is not None:
            raise ParameterError(f"epochs={epochs!r} and steps={steps!r}: give one of them, not both")
        self.pool = _subset_indices(self.n, self.subset, self.seed)
        per_epoch = pool_size // self.batch_size if drop_last else math.ceil(pool_size / self.batch_size)
        self.steps_per_epoch: int | None = per_epoch
        if steps is not None:
            self._base_len = check_int("steps", steps, 1)
        else:
            self._base_len = check_int("epochs", 1 if epochs is None else epochs, 1) * per_epoch
        self._explicit: tuple[np.ndarray, np.ndarray] | None = None  # (flat indices, offsets)
        self._skipped: tuple[int, ...] = ()
        self._cache: tuple[int, np.ndarray] | None = None

    # -- other constructors ------------------------------------------------------------------------

    @classmethod
    def from_batches(cls, batches: Sequence[Sequence[int] | np.ndarray], n: int) -> BatchOrder:
        """An order given batch by batch (e.g. a hand-made ordering); positions must be in ``[0, n)``."""
        n = check_int("n", n, 1)
        arrays = [np.asarray(b, dtype=np.int64).reshape(-1) for b in batches]
        if not arrays:
            raise ParameterError("batches=[] is not allowed; give at least one batch")
        for i, b in enumerate(arrays):
            if b.size == 0 or b.min() < 0 or b.max() >= n:
                raise ParameterError(f"batches[{i}] is not allowed; use a non-empty batch of positions in [0, {n})")
        order = cls.__new__(cls)
        order.n, order.subset, order.seed, order.drop_last = n, None, None, False
        order.batch_size = max(b.size for b in arrays)
        order.pool = np.unique(np.concatenate(arrays))
        order.steps_per_epoch = None
        order._base_len = len(arrays)
        offsets = np.concatenate([[0], np.cumsum([b.size for b in arrays])]).astype(np.int64)
        order._explicit = (np.concatenate(arrays), offsets)
        order._skipped = ()
        order._cache = None
        return order

    def _copy(self, skipped: tuple[int, ...]) -> BatchOrder:
        other = self.__class__.__new__(self.__class__)
        other.__dict__.update(self.__dict__)
        other._skipped = skipped
        other._cache = None
        return other

    # -- the base order (before any step is skipped) ----------------------------------------------

    def _epoch_permutation(self, epoch: int) -> np.ndarray:
        if self._cache is None or self._cache[0] != epoch:
            perm = np.random.default_rng([_EPOCH_TAG, self.seed, epoch]).permutation(len(self.pool))
            self._cache = (epoch, self.pool[perm])
        return self._cache[1]

    def _base_batch(self, j: int) -> np.ndarray:
        if self._explicit is not None:
            flat, offsets = self._explicit
            return flat[offsets[j]:offsets[j + 1]].copy()
        epoch, k = divmod(j, self.steps_per_epoch)
        return self._epoch_permutation(epoch)[k * self.batch_size:(k + 1) * self.batch_size].copy()

    def _base_index(self, i: int) -> int:
        """Step ``i`` of this order as a step of the base order (skipped steps shift later ones)."""
        j = i
        for s in self._skipped:  # sorted
            if s <= j:
                j += 1
            else:
                break
        return j

    def _check_step(self, name: str, step: Any) -> int:
        if isinstance(step, bool) or not isinstance(step, (int, np.integer)):
            raise ParameterError(f"{name}={step!r} is not allowed; use an int step index")
        step = int(step)
        if len(self) == 0:
            raise ParameterError(f"{name}={step} is not allowed; this order has no steps left")
        if not -len(self) <= step < len(self):
            raise ParameterError(f"{name}={step} is not allowed; this order has steps 0..{len(self) - 1}")
        return step % len(self)

    # -- the sequence ------------------------------------------------------------------------------

    def __len__(self) -> int:
        return self._base_len - len(self._skipped)

    def __getitem__(self, step: int) -> np.ndarray:
        return self.batch(step)

    def batch(self, step: int) -> np.ndarray:
        """The sample positions of step ``step`` (negative counts from the end)."""
        return self._base_batch(self._base_index(self._check_step("step", step)))

    def __iter__(self) -> Iterator[np.ndarray]:
        skipped = set(self._skipped)
        for j in range(self._base_len):
            if j not in skipped:
                yield self._base_batch(j)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, BatchOrder):
            return NotImplemented
        return (self.n == other.n and len(self) == len(other)
                and all(np.array_equal(a, b) for a, b in zip(self, other, strict=True)))

    __hash__ = None  # mutable cache inside; compare with ==

    def __repr__(self) -> str:
        kind = "explicit" if self._explicit is not None else f"seed={self.seed}, drop_last={self.drop_last}"
        sub = f", subset={self.subset}" if self.subset is not None else ""
        skip = f", skipped={list(self._skipped)}" if self._skipped else ""
        return f"BatchOrder(n={self.n}, batch_size={self.batch_size}, steps={len(self)}, {kind}{sub}{skip})"

    @property
    def skipped(self) -> tuple[int, ...]:
        """Steps of the original order that :meth:`without` removed (in the original numbering)."""
        return self._skipped

    @property
    def epochs(self) -> float | None:
        """Number of epochs the original order spans (fractional for a partial last epoch)."""
        return None if self.steps_per_epoch is None else self._base_len / self.steps_per_epoch

    def epoch_of(self, step: int) -> int | None:
        """The epoch that step ``step`` belongs to (``None`` for an order given batch by batch)."""
        j = self._base_index(self._check_step("step", step))
        return None if self.steps_per_epoch is None else j // self.steps_per_epoch

    def without(self, step: int) -> BatchOrder:
        """The same order with step ``step`` skipped and all other steps kept, in order (§8.3's M′)."""
        j = self._base_index(self._check_step("step", step))
        return self._copy(tuple(sorted((*self._skipped, j))))

    # -- counting ----------------------------------------------------------------------------------

    def sample_counts(self) -> np.ndarray:
        """How many steps use each sample position: an int64 array of length ``n``."""
        counts = np.zeros(self.n, dtype=np.int64)
        pending: list[np.ndarray] = []
        size = 0
        for b in self:
            pending.append(b)
            size += b.size
            if size >= 1 << 20:
                counts += np.bincount(np.concatenate(pending), minlength=self.n)
                pending, size = [], 0
        if pending:
            counts += np.bincount(np.concatenate(pending), minlength=self.n)
        return counts

    def times_used(self, item: int | Sequence[int] | np.ndarray) -> int:
        """How often ``item`` is used: a sample position (int) → the number of steps that contain it; a
        batch (sequence of positions) → the number of steps whose batch is exactly that set of samples.

        For single-gradient unlearning of a batch (§5), ``m = order.times_used(order[i])``; with
        reshuffling every epoch a whole batch almost never recurs, while each of its samples is used
        about once per epoch (``times_used(sample)``).
        """
        if isinstance(item, (int, np.integer)) and not isinstance(item, bool):
            sample = check_int("item", item, 0, self.n - 1)
            return sum(int(np.count_nonzero(b == sample)) for b in self)
        target = np.sort(np.asarray(item, dtype=np.int64).reshape(-1))
        if target.size == 0:
            raise ParameterError("item=[] is not allowed; give a sample position or a non-empty batch")
        return sum(1 for b in self if b.size == target.size and np.array_equal(np.sort(b), target))

    def steps_containing(self, samples: int | Sequence[int] | np.ndarray) -> list[int]:
        """The steps (of this order) whose batch contains any of ``samples`` (amnesiac unlearning needs
        them)."""
        wanted = np.asarray(samples, dtype=np.int64).reshape(-1)
        return [i for i, b in enumerate(self) if np.isin(b, wanted).any()]

    # -- save / load -------------------------------------------------------------------------------

    def digest(self) -> str:
        """SHA-256 of the batches (sizes and positions), to check that a replay is the same order."""
        h = hashlib.sha256()
        for b in self:
            h.update(np.int64(b.size).tobytes())
            h.update(b.astype("<i8").tobytes())
        return h.hexdigest()

    def _recipe(self) -> dict[str, Any]:
        return {
            "format": _FORMAT, "version": _FORMAT_VERSION, "n": self.n, "batch_size": self.batch_size,
            "steps": self._base_len, "seed": self.seed, "drop_last": self.drop_last, "subset": self.subset,
            "skipped": list(self._skipped), "explicit": self._explicit is not None, "sha256": self.digest(),
        }

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the order to ``path``: ``.json`` (recipe + checksum; explicit orders keep their batches)
        or ``.npz`` (the batches themselves, replayable whatever the NumPy version)."""
        path = Path(path)
        suffix = check_choice("path suffix", path.suffix.lower(), (".json", ".npz"))
        recipe = self._recipe()
        flat, offsets = self._explicit if self._explicit is not None else self._materialise()
        if suffix == ".json":
            if self._explicit is not None:
                recipe["batches"] = [flat[offsets[j]:offsets[j + 1]].tolist() for j in range(len(offsets) - 1)]
            path.write_text(json.dumps(recipe))
        else:
            with path.open("wb") as fh:
                np.savez_compressed(fh, flat=flat, offsets=offsets, recipe=np.array(json.dumps(recipe)))
        return path

    def _materialise(self) -> tuple[np.ndarray, np.ndarray]:
        """All batches of the base order (skipped steps included) as (flat, offsets)."""
        batches = [self._base_batch(j) for j in range(self._base_len)]
        offsets = np.concatenate([[0], np.cumsum([b.size for b in batches])]).astype(np.int64)
        return np.concatenate(batches), offsets

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> BatchOrder:
        """Read an order written by :meth:`save` and check it against its checksum."""
        path = Path(path)
        suffix = check_choice("path suffix", path.suffix.lower(), (".json", ".npz"))
        if suffix == ".json":
            recipe = json.loads(path.read_text())
            explicit = recipe.get("batches")
        else:
            with np.load(path, allow_pickle=False) as npz:
                recipe = json.loads(str(npz["recipe"]))
                flat, offsets = npz["flat"], npz["offsets"]
            explicit = [flat[offsets[j]:offsets[j + 1]] for j in range(len(offsets) - 1)]
        if recipe.get("format") != _FORMAT:
            raise ParameterError(f"path={str(path)!r} is not a saved BatchOrder")
        if explicit is not None:
            order = cls.from_batches(explicit, recipe["n"])
            if not recipe["explicit"]:  # keep the recipe's metadata for an npz of a seeded order
                order.seed, order.drop_last, order.subset = recipe["seed"], recipe["drop_last"], recipe["subset"]
                order.batch_size = recipe["batch_size"]
                pool_size = recipe["n"] if recipe["subset"] is None else recipe["subset"]
                per_epoch = pool_size // order.batch_size if order.drop_last else math.ceil(
                    pool_size / order.batch_size)
                order.steps_per_epoch = per_epoch
                order.pool = _subset_indices(recipe["n"], recipe["subset"], recipe["seed"])
        else:
            order = cls(recipe["n"], recipe["batch_size"], steps=recipe["steps"], seed=recipe["seed"],
                        drop_last=recipe["drop_last"], subset=recipe["subset"])
        order = order._copy(tuple(recipe["skipped"]))
        if order.digest() != recipe["sha256"]:
            raise ParameterError(
                f"path={str(path)!r} does not replay to the saved order (the random number generator changed); "
                "save it as .npz to keep the batches themselves"
            )
        return order
