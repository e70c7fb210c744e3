"""The inputs of every experiment: data sets as tensors and the batch orders SGD walks through.

- :mod:`.datasets`: :class:`TensorData`, digits and MNIST-5k (offline), CIFAR-shaped synthetic data, CIFAR-10/100.
- :mod:`.orders`: :class:`BatchOrder`, the ordering *I* of §4.1.
- :mod:`.paper_tables`: the paper's Tables 1–4 as reference data.
- :mod:`.text`: labelled text and the cached features of a frozen pretrained encoder (Table 2).
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
    load_mnist5k,
    synthetic_cifar,
)
from .orders import BatchOrder, subset_positions
from .paper_tables import PAPER_TABLES, paper_table, paper_table_source

__all__ = [
    "CIFAR_STATS", "DATA_ENV_VAR", "DATASETS", "PAPER_TABLES", "BatchOrder", "DatasetUnavailableError", "TensorData",
    "batch_tensors", "default_data_root", "load_cifar", "load_dataset", "load_digits_dataset", "load_mnist5k",
    "paper_table", "paper_table_source", "subset_positions",
    "synthetic_cifar",
]
