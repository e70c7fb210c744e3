"""The inputs of every experiment: data sets as tensors and the batch orders SGD walks through.

- :mod:`.datasets`: :class:`TensorData`, digits (offline), CIFAR-shaped synthetic data, CIFAR-10/100.
- :mod:`.orders`: :class:`BatchOrder`, the ordering *I* of §4.1.
"""

from .datasets import (
    CIFAR_STATS,
    DATA_ENV_VAR,
    DATASETS,
    DatasetUnavailableError,
    TensorData,
    batch_tensors,
    default_data_root,
    load_cifar,
    load_dataset,
    load_digits_dataset,
    synthetic_cifar,
)
from .orders import BatchOrder, subset_positions

__all__ = [
    "CIFAR_STATS", "DATA_ENV_VAR", "DATASETS", "BatchOrder", "DatasetUnavailableError", "TensorData",
    "batch_tensors", "default_data_root", "load_cifar", "load_dataset", "load_digits_dataset", "subset_positions",
    "synthetic_cifar",
]
