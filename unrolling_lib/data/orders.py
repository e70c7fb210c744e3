"""Batch orders: the ordering *I* of §4.1, which samples make up the batch of every SGD step.

:class:`BatchOrder` is seeded, replayable, can be saved and loaded, and ``order.without(i)`` is the same
order with step ``i`` skipped — what the naively retrained model M′ of §8.3 is trained on
(``order.without(i, k, …)`` skips several, e.g. every step of :meth:`BatchOrder.steps_of` a batch).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..validation import ParameterError, check_bool, check_choice, check_int

__all__ = ["BatchOrder", "subset_positions"]

# Tags that keep the seeded random streams for different purposes apart.
_SUBSET_TAG, _EPOCH_TAG = 0x5B5E7, 0xE90C4


def subset_positions(n: int, subset: int | None, seed: int) -> np.ndarray:
    """``subset`` sample positions out of ``n``, chosen by ``seed`` and kept in their original order."""
    if subset is None:
        return np.arange(n, dtype=np.int64)
    subset = check_int("subset", subset, 1, n)
    chosen = np.random.default_rng([_SUBSET_TAG, seed]).choice(n, size=subset, replace=False)
    return np.sort(chosen).astype(np.int64)



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
        self.drop_last = check_bool("drop_last", drop_last)
        if epochs is not None and steps is not None:
            raise ParameterError(f"epochs={epochs!r} and steps={steps!r}: give one of them, not both")
        self.pool = subset_positions(self.n, self.subset, self.seed)
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

    def check_step(self, name: str, step: Any) -> int:
        """``step`` as a step index of this order, an int in [−len, len − 1] (negative counts from the end),
        returned in [0, len − 1]; the error names ``name``."""
        if len(self) == 0:
            raise ParameterError(f"{name}={step!r} is not allowed; this order has no steps left")
        return check_int(name, step, -len(self), len(self) - 1) % len(self)

    # -- the sequence ------------------------------------------------------------------------------

    def __len__(self) -> int:
        return self._base_len - len(self._skipped)

    def __getitem__(self, step: int) -> np.ndarray:
        return self.batch(step)

    def batch(self, step: int) -> np.ndarray:
        """The sample positions of step ``step`` (negative counts from the end)."""
        return self._base_batch(self._base_index(self.check_step("step", step)))

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
        j = self._base_index(self.check_step("step", step))
        return None if self.steps_per_epoch is None else j // self.steps_per_epoch

    def without(self, *steps: int | Sequence[int] | np.ndarray) -> BatchOrder:
        """The same order with the given steps skipped and all other steps kept, in order (§8.3's M′).

        ``order.without(i)`` skips one step; ``order.without(i, k)`` or ``order.without([i, k])`` skips
        several at once, all numbered as in this order (``without(7, 8)`` drops steps 7 and 8, as does
        ``without(7).without(7)``, whose second call numbers the shortened order). Steps must be distinct.
        The released verification code's M′ skips the forgotten batch in every epoch:
        ``order.without(order.steps_of(batch))``.
        """
        if len(steps) == 1 and isinstance(steps[0], (list, tuple, range, np.ndarray)):
            (given,) = steps
            steps = tuple(given.tolist() if isinstance(given, np.ndarray) else given)
        if not steps:
            raise ParameterError("steps=[] is not allowed; give at least one step to skip")
        checked = [self.check_step("step", step) for step in steps]
        if len(set(checked)) != len(checked):
            raise ParameterError(f"steps={list(steps)!r} is not allowed; give distinct steps (negative ones count "
                                 "from the end)")
        base = [self._base_index(i) for i in checked]
        return self._copy(tuple(sorted((*self._skipped, *base))))

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
        return len(self._steps_with_batch("item", item, "a sample position or a non-empty batch"))

    def steps_of(self, batch: Sequence[int] | np.ndarray) -> list[int]:
        """The steps (of this order) whose batch is exactly the samples of ``batch``, in any order:
        ``len(order.steps_of(b)) == order.times_used(b)``.

        With a block that recurs in every epoch (the released verification code moves the forgotten batch
        to the front of each epoch), these are the steps a retrained model skips.
        """
        return self._steps_with_batch("batch", batch, "a non-empty batch of sample positions")

    def _steps_with_batch(self, name: str, batch: Any, allowed: str) -> list[int]:
        target = np.sort(np.asarray(batch, dtype=np.int64).reshape(-1))
        if target.size == 0:
            raise ParameterError(f"{name}=[] is not allowed; give {allowed}")
        return [i for i, b in enumerate(self) if b.size == target.size and np.array_equal(np.sort(b), target)]

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
                order.pool = subset_positions(recipe["n"], recipe["subset"], recipe["seed"])
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
