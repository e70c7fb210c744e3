"""Shared fixtures. Tests run torch on one thread: on small CPUs that is both faster and steadier.

The chapters that nbval executes run headless: ``UNROLLING_HEADLESS=1`` (inherited by their kernels) keeps them
from opening live widgets, and every cell and kernel start is bounded by the book's own limits.
"""

import os
from pathlib import Path

import pytest
import yaml

from unrolling_lib.figures.live import HEADLESS_ENV
from unrolling_lib.training.runtime import cpu_threads

os.environ[HEADLESS_ENV] = "1"

ROOT = Path(__file__).resolve().parents[1]
NBVAL_DEFAULT_CELL_TIMEOUT = 2000  # nbval's own default: replaced by _config.yml's execute.timeout


def pytest_configure(config):
    if str(getattr(config.option, "nbval_cell_timeout", None)) == str(NBVAL_DEFAULT_CELL_TIMEOUT):
        execute = yaml.safe_load((ROOT / "_config.yml").read_text()).get("execute") or {}
        config.option.nbval_cell_timeout = int(execute.get("timeout", 600))
    if str(getattr(config.option, "nbval_kernel_startup_timeout", None)) == "60":  # nbval's default
        config.option.nbval_kernel_startup_timeout = 120


@pytest.fixture(autouse=True)
def one_thread():
    with cpu_threads(1):
        yield
