"""The binary toy classifier (Eq. 11): its loss ties to ``sd_loss`` and its minimum to a numeric search."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.optimize import minimize_scalar

from unrolling_lib.losses import sd_loss
from unrolling_lib.theory import toy_sd_loss, toy_sd_minimum

GAMMAS = [0.05, 0.3, 0.7, 0.99, 1.0, 1.2, 1.5, 2.0, 5.0]


@pytest.mark.parametrize("scaling", ["equation", "code"])
def test_toy_loss_is_sd_loss_on_two_outputs(scaling: str) -> None:
    rng = np.random.default_rng(0)
    for a, b in rng.normal(scale=3, size=(10, 2)):
        for gamma in (0.0, 0.4, 2.0):
            logits = torch.tensor([[a, b]], dtype=torch.float64)
            expected = sd_loss(logits, torch.tensor([0]), gamma, scaling=scaling).item()
            assert toy_sd_loss(a, b, gamma, scaling=scaling) == pytest.approx(expected, rel=1e-12)


def test_toy_loss_formula_and_types() -> None:
    assert toy_sd_loss(1.0, 0.0, 0.5) == pytest.approx(math.log1p(math.exp(-1)) + 0.25)
    code = math.log1p(math.exp(-1)) + 0.5 / (2 * math.sqrt(2))
    assert toy_sd_loss(1.0, 0.0, 0.5, scaling="code") == pytest.approx(code)
    grid = toy_sd_loss(np.zeros((2, 3)), np.ones((2, 3)), 1.0)
    assert isinstance(grid, np.ndarray) and grid.shape == (2, 3)
    a = torch.tensor([0.5, -1.0], requires_grad=True)
    out = toy_sd_loss(a, torch.tensor([0.0, 0.0]), 1.0)
    out.sum().backward()
    assert isinstance(out, torch.Tensor) and torch.isfinite(a.grad).all()
    assert toy_sd_loss(1e4, -1e4, 0.0) == pytest.approx(0.0, abs=1e-300)  # no overflow


@pytest.mark.parametrize("scaling", ["equation", "code"])
@pytest.mark.parametrize("gamma", GAMMAS)
def test_toy_minimum_matches_numeric_minimum(scaling: str, gamma: float) -> None:
    found = minimize_scalar(lambda d: toy_sd_loss(d, 0.0, gamma, scaling=scaling), bounds=(-10.0, 40.0),
                            method="bounded", options={"xatol": 1e-10})
    d_star = toy_sd_minimum(gamma, scaling=scaling)
    assert d_star == pytest.approx(found.x, abs=1e-4)
    # and the value there is no worse than anything the search saw
    assert toy_sd_loss(d_star, 0.0, gamma, scaling=scaling) <= found.fun + 1e-12


def test_toy_minimum_closed_forms() -> None:
    for gamma in (0.1, 0.5, 0.9):
        assert toy_sd_minimum(gamma) == pytest.approx(math.log(2 / gamma - 1))
    for gamma in (0.1, 1.0, 1.4):
        assert toy_sd_minimum(gamma, scaling="code") == pytest.approx(math.log(2 * math.sqrt(2) / gamma - 1))
    assert toy_sd_minimum(1.0) == 0.0 and toy_sd_minimum(3.0) == 0.0
    assert toy_sd_minimum(math.sqrt(2), scaling="code") == pytest.approx(0.0, abs=1e-12)
    assert toy_sd_minimum(0.0) == math.inf
    assert np.allclose(toy_sd_minimum(np.array([0.5, 2.0])), [math.log(3), 0.0])


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="gamma="):
        toy_sd_minimum(-1.0)
    with pytest.raises(ValueError, match="scaling='paper'"):
        toy_sd_minimum(1.0, scaling="paper")
    with pytest.raises(ValueError, match="gamma="):
        toy_sd_loss(0.0, 0.0, -0.5)
