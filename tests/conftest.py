"""Shared fixtures. Tests run torch on one thread: on small CPUs that is both faster and steadier."""

import pytest

from unrolling_lib.training.runtime import cpu_threads


@pytest.fixture(autouse=True)
def one_thread():
    with cpu_threads(1):
        yield
