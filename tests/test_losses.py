"""SD loss (Eq. 10, both scalings) and the ℓ2 penalty against direct formulas."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from unrolling_lib.losses import SDLoss, l2_penalty, logit_std, safe_sqrt, sd_loss


def _logits(b: int = 6, c: int = 5, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return (torch.randn(b, c, generator=gen, dtype=torch.float64) * 2,
            torch.randint(0, c, (b,), generator=gen))


def _direct(logits: torch.Tensor, targets: torch.Tensor, gamma: float, scaling: str) -> float:
    """Eq. 10 / the released code, written out with numpy."""
    z, y = logits.detach().numpy(), targets.numpy()
    b, c = z.shape
    log_softmax = z - z.max(axis=1, keepdims=True)
    log_softmax = log_softmax - np.log(np.exp(log_softmax).sum(axis=1, keepdims=True))
    ce = -log_softmax[np.arange(b), y]
    if scaling == "equation":
        std = np.sqrt(((z - z.mean(axis=1, keepdims=True)) ** 2).sum(axis=1) / c)
        return float(np.mean(ce + gamma * std))
    return float(ce.mean() + gamma * np.std(z, axis=1, ddof=1).sum() / (b * c))


@pytest.mark.parametrize("scaling", ["equation", "code"])
@pytest.mark.parametrize("gamma", [0.0, 0.3, 5.0])
def test_sd_loss_equals_direct_formula(scaling: str, gamma: float) -> None:
    z, y = _logits()
    assert sd_loss(z, y, gamma, scaling=scaling).item() == pytest.approx(_direct(z, y, gamma, scaling), rel=1e-12)


def test_code_scaling_matches_torch_std_expression() -> None:
    z, y = _logits(b=7, c=10, seed=3)
    gamma = 2.5
    code = F.cross_entropy(z, y) + gamma * torch.std(z, dim=1).sum() / (z.shape[0] * z.shape[1])
    assert sd_loss(z, y, gamma).item() == pytest.approx(code.item(), rel=1e-12)  # "code" is the default


def test_gamma_zero_is_cross_entropy() -> None:
    z, y = _logits()
    for scaling in ("equation", "code"):
        assert sd_loss(z, y, 0.0, scaling=scaling).item() == pytest.approx(F.cross_entropy(z, y).item(), rel=1e-14)


@pytest.mark.parametrize("scaling", ["equation", "code"])
def test_gradcheck_away_from_zero_spread(scaling: str) -> None:
    z, y = _logits(b=4, c=3, seed=1)
    z.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda t: sd_loss(t, y, 1.7, scaling=scaling), (z,))
    assert torch.autograd.gradgradcheck(lambda t: sd_loss(t, y, 1.7, scaling=scaling), (z,))


@pytest.mark.parametrize("scaling", ["equation", "code"])
def test_finite_value_and_gradient_at_zero_spread(scaling: str) -> None:
    z, y = _logits(b=3, c=4, seed=2)
    z = z.clone()
    z[1] = 0.7  # all logits of sample 1 equal: std = 0, where sqrt has an infinite derivative
    z.requires_grad_(True)
    loss = sd_loss(z, y, 3.0, scaling=scaling)
    (grad,) = torch.autograd.grad(loss, z, create_graph=True)
    assert math.isfinite(loss.item()) and torch.isfinite(grad).all()
    assert loss.item() == pytest.approx(_direct(z, y, 3.0, scaling), rel=1e-12)
    # For the zero-spread row only the cross entropy contributes: (softmax − one-hot) / B.
    expected = (torch.softmax(z[1].detach(), 0) - F.one_hot(y[1], 4).double()) / 3
    assert torch.allclose(grad[1], expected, atol=1e-14)
    hess_row = torch.autograd.grad(grad[1].sum(), z)[0]
    assert torch.isfinite(hess_row).all()  # second derivatives too (σ is taken through this loss)


def test_all_rows_zero_spread() -> None:
    z = torch.zeros(2, 2, dtype=torch.float64, requires_grad=True)  # the toy classifier's start, a = b
    y = torch.tensor([0, 1])
    loss = sd_loss(z, y, 1.0, scaling="equation")
    loss.backward()
    assert loss.item() == pytest.approx(math.log(2))
    assert torch.isfinite(z.grad).all()


def test_logit_std_and_safe_sqrt() -> None:
    z, _ = _logits()
    assert torch.allclose(logit_std(z), z.std(dim=1, unbiased=False))
    assert torch.allclose(logit_std(z, unbiased=True), z.std(dim=1))
    x = torch.tensor([0.0, 4.0], requires_grad=True)
    safe_sqrt(x).sum().backward()
    assert x.grad.tolist() == [0.0, 0.25]


def test_sd_loss_module() -> None:
    z, y = _logits()
    crit = SDLoss(2.0, scaling="equation")
    assert crit(z, y).item() == sd_loss(z, y, 2.0, scaling="equation").item()
    assert "equation" in repr(crit)


@pytest.mark.parametrize("bad", [-0.1, float("nan"), float("inf"), True, "1"])
def test_bad_gamma(bad: object) -> None:
    z, y = _logits()
    with pytest.raises(ValueError, match="gamma="):
        sd_loss(z, y, bad)  # type: ignore[arg-type]


def test_bad_scaling_and_shapes() -> None:
    z, y = _logits()
    with pytest.raises(ValueError, match="scaling='paper'.*'code', 'equation'"):
        sd_loss(z, y, 1.0, scaling="paper")
    with pytest.raises(ValueError, match="logits must"):
        sd_loss(z[0], y[:1], 1.0)
    with pytest.raises(ValueError, match="at least 2 classes"):
        sd_loss(z[:, :1], torch.zeros(6, dtype=torch.long), 1.0)
    with pytest.raises(ValueError, match="scaling="):
        SDLoss(1.0, scaling="eq")


def test_l2_penalty() -> None:
    model = nn.Sequential(nn.Linear(3, 2), nn.Linear(2, 1)).double()
    model[1].bias.requires_grad_(False)  # frozen: not counted
    trainable = [model[0].weight, model[0].bias, model[1].weight]
    expected = 0.1 * math.sqrt(sum(float((p.detach() ** 2).sum()) for p in trainable))
    assert l2_penalty(model, 0.1).item() == pytest.approx(expected, rel=1e-12)
    for p in model.parameters():
        nn.init.zeros_(p)
    pen = l2_penalty(model, 0.5)
    pen.backward()
    assert pen.item() == 0.0 and all(torch.isfinite(p.grad).all() for p in trainable)
    with pytest.raises(ValueError, match="lam="):
        l2_penalty(model, -1.0)


def test_an_empty_batch_is_refused():
    with pytest.raises(ValueError, match="^logits must hold at least one sample"):
        sd_loss(torch.zeros(0, 3), torch.zeros(0, dtype=torch.long), 1.0)


# --- γ units: code scaling vs Eq. 10 --------------------------------------------------------------------------


@pytest.mark.parametrize("num_classes", [2, 10, 100])
def test_equation_gamma_gives_the_same_loss_in_both_scalings(num_classes):
    from unrolling_lib.losses import code_gamma, equation_gamma, sd_loss

    gen = torch.Generator().manual_seed(num_classes)
    logits = torch.randn(7, num_classes, generator=gen, dtype=torch.float64)
    targets = torch.randint(num_classes, (7,), generator=gen)
    gamma_code = 20.0
    gamma_eq = equation_gamma(gamma_code, num_classes)
    assert torch.allclose(sd_loss(logits, targets, gamma_code, scaling="code"),
                          sd_loss(logits, targets, gamma_eq, scaling="equation"), rtol=1e-12, atol=0)
    assert code_gamma(gamma_eq, num_classes) == pytest.approx(gamma_code, rel=1e-14)


def test_equation_gamma_values_quoted_in_the_book():
    from unrolling_lib.losses import equation_gamma

    assert equation_gamma(1.0, 10) == pytest.approx(0.1054, abs=1e-4)  # ≈ 0.105·γ on CIFAR-10
    assert equation_gamma(1.0, 100) == pytest.approx(0.01005, abs=1e-5)  # ≈ 0.010·γ on CIFAR-100
    assert equation_gamma(20.0, 10) == pytest.approx(2.108, abs=1e-3)  # γ = 20 of §8.3 ≈ 2.1 in Eq. 10's units
    assert equation_gamma(1.0, 2) == pytest.approx(1 / math.sqrt(2))  # the toy chapter's γ/√2


@pytest.mark.parametrize("bad", [{"num_classes": 1}, {"num_classes": 2.5}, {"gamma": -1.0}])
def test_equation_gamma_refuses_bad_input(bad):
    from unrolling_lib.losses import equation_gamma
    from unrolling_lib.validation import ParameterError

    args = {"gamma": 1.0, "num_classes": 10, **bad}
    with pytest.raises(ParameterError, match=next(iter(bad))):
        equation_gamma(**args)
