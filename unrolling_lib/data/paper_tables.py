"""The paper's reported numbers, as reference data beside our own runs (§8.1 Tables 1–2, Appendix C Tables 3–4).

Each table ships in the package as one tidy CSV (``unrolling_lib/data/paper/<name>.csv``) whose first
comment line names its source: the paper, the table and where it is. One row per reported cell: ``table``,
``pretrain_epochs`` (N), ``dataset``, ``model``, the strength (``gamma`` for the SD loss, code scaling;
``l2`` for the ℓ2 penalty), ``e`` (the unlearning error, Eq. 9) and ``accuracy`` (test accuracy in percent,
as printed). A value the paper left out ("-") is missing (NaN). Every table has t = 1 epoch: of CIFAR, or for
Table 2 (DistilBERT on IMDB, N = 3 epochs) of IMDB, which also reports ``v`` (the verification error of §8.3).

These are the paper's scales (ResNet-18 / VGG-19 on CIFAR, thousands of steps); a chapter that shows them
beside the quick profile's numbers labels them as such.
"""

from __future__ import annotations

from importlib import resources

import pandas as pd

from ..validation import check_choice

__all__ = ["PAPER_TABLES", "paper_table", "paper_table_source"]

PAPER_TABLES = ("table1", "table2", "table3", "table4")


def _text(name: str) -> str:
    name = check_choice("name", name, PAPER_TABLES)
    return resources.files(__package__).joinpath("paper", f"{name}.csv").read_text(encoding="utf-8")


def paper_table(name: str) -> pd.DataFrame:
    """The paper's table ``name`` (one of :data:`PAPER_TABLES`) as a tidy DataFrame (module docstring)."""
    from io import StringIO

    return pd.read_csv(StringIO(_text(name)), comment="#")


def paper_table_source(name: str) -> str:
    """Where table ``name`` comes from: its CSV's first comment line, without the ``#``."""
    return _text(name).splitlines()[0].lstrip("# ").strip()
