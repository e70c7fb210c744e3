"""Single-gradient unlearning (§5.1, §8.3) against exact retraining and hand-computed gradients."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from torch import nn

from unrolling_lib.metrics import verification_error
from unrolling_lib.params import flat_weights
from unrolling_lib.unlearning import single_gradient_unlearn

MSE = nn.MSELoss()


def _regression(n: int = 10, d: int = 5, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, nn.Linear]:
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=gen, dtype=torch.float64)
    y = x @ torch.randn(d, 1, generator=gen, dtype=torch.float64) + 0.3 * torch.randn(n, 1, generator=gen,
                                                                                        dtype=torch.float64)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = nn.Linear(d, 1).double()
    return x, y, model


def _sgd(model: nn.Module, x: torch.Tensor, y: torch.Tensor, order: list[int], lr: float) -> nn.Module:
    """Plain SGD with batch size 1 over ``order`` (a copy of ``model`` is trained)."""
    model = copy.deepcopy(model)
    for i in order:
        model.zero_grad()
        MSE(model(x[i:i + 1]), y[i:i + 1]).backward()
        with torch.no_grad():
            for p in model.parameters():
                p -= lr * p.grad
    return model


def _verification(lr: float, at: str = "initial") -> float:
    x, y, w0 = _regression()
    order = list(range(len(y)))  # t = 10 steps of batch size 1
    trained = _sgd(w0, x, y, order, lr)  # x̂₁ = sample 0 is used first
    retrained = _sgd(w0, x, y, order[1:], lr)  # the same order without it
    unlearned = single_gradient_unlearn(trained, w0, MSE, x[:1], y[:1], lr=lr, unlearn_at=at)
    return verification_error(unlearned, retrained)


@pytest.mark.parametrize("at", ["initial", "final"])
def test_verification_error_is_second_order_in_lr(at: str) -> None:
    lrs = [1e-2, 5e-3, 2.5e-3]
    v = np.array([_verification(lr, at) for lr in lrs])
    scaled = v / np.square(lrs)
    assert np.all(v > 0)
    assert scaled.max() / scaled.min() < 1.3  # v/η² stays (nearly) constant: v = O(η²), §5
    assert np.all((v[:-1] / v[1:] > 3.5) & (v[:-1] / v[1:] < 4.5))  # halving η divides v by ~4
    # Without unlearning the gap to the retrained model is first order: much larger.
    x, y, w0 = _regression()
    n = len(y)
    gap = verification_error(_sgd(w0, x, y, list(range(n)), 2.5e-3), _sgd(w0, x, y, list(range(1, n)), 2.5e-3))
    assert gap > 20 * v[-1]


def test_single_step_is_undone_exactly() -> None:
    x, y, w0 = _regression()
    trained = _sgd(w0, x, y, [3], 0.1)
    unlearned = single_gradient_unlearn(trained, w0, MSE, x[3:4], y[3:4], lr=0.1)
    assert verification_error(unlearned, w0) < 1e-14


def _hand_gradient(model: nn.Linear, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """∇ of the mean squared error of a linear model, (weight, bias) flattened: 2/n Σ (w·x + b − y)(x, 1)."""
    w, b = model.weight.detach(), model.bias.detach()
    r = (x @ w.T + b - y).reshape(-1)
    gw = 2 * (r[:, None] * x).mean(dim=0)
    return torch.cat([gw, (2 * r.mean()).reshape(1)])


@pytest.mark.parametrize("at", ["initial", "final"])
def test_update_equals_hand_formula(at: str) -> None:
    x, y, w0 = _regression(seed=1)
    order = list(range(len(y))) * 2  # two epochs: each batch used m = 2 times
    trained = _sgd(w0, x, y, order, 0.01)
    batch = slice(4, 8)  # a batch of 4: the gradient of the batch-mean loss
    where = w0 if at == "initial" else trained
    expected = flat_weights(trained) + 0.01 * 2 * _hand_gradient(where, x[batch], y[batch])
    for initial in (w0, w0.state_dict(), flat_weights(w0)):
        unlearned = single_gradient_unlearn(trained, initial, MSE, x[batch], y[batch], lr=0.01, times_used=2,
                                            unlearn_at=at)
        assert torch.allclose(flat_weights(unlearned), expected, rtol=0, atol=1e-14)


def test_inputs_untouched_and_batchnorm_in_train_mode() -> None:
    torch.manual_seed(0)
    w0 = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Linear(4, 1)).double()
    trained = copy.deepcopy(w0)
    with torch.no_grad():
        trained[0].weight += 0.1
    trained.eval()
    before_t, before_0 = copy.deepcopy(trained.state_dict()), copy.deepcopy(w0.state_dict())
    x, y = torch.randn(8, 3, dtype=torch.float64), torch.randn(8, 1, dtype=torch.float64)
    unlearned = single_gradient_unlearn(trained, w0, MSE, x, y, lr=0.1)
    for ref, model in ((before_t, trained), (before_0, w0)):
        assert all(torch.equal(v, model.state_dict()[k]) for k, v in ref.items())
    assert not trained.training and all(p.grad is None for p in trained.parameters())
    # Gradient taken as in the SGD step: BatchNorm on batch statistics (train mode), at w₀.
    reference = copy.deepcopy(w0).train()
    grads = torch.autograd.grad(MSE(reference(x), y), list(reference.parameters()))
    expected = flat_weights(trained) + 0.1 * torch.cat([g.reshape(-1) for g in grads])
    assert torch.allclose(flat_weights(unlearned), expected, atol=1e-14)
    assert torch.equal(unlearned[1].running_mean, trained[1].running_mean)  # buffers are w_t's


def test_bad_arguments() -> None:
    x, y, w0 = _regression()
    with pytest.raises(ValueError, match="lr="):
        single_gradient_unlearn(w0, w0, MSE, x, y, lr=0.0)
    with pytest.raises(ValueError, match="times_used="):
        single_gradient_unlearn(w0, w0, MSE, x, y, lr=0.1, times_used=-1)
    with pytest.raises(ValueError, match="^unlearn_at='middle' is not allowed; choose one of 'initial', 'final'"):
        single_gradient_unlearn(w0, w0, MSE, x, y, lr=0.1, unlearn_at="middle")
    with pytest.raises(ValueError, match="trainable weights"):
        single_gradient_unlearn(w0, torch.zeros(2), MSE, x, y, lr=0.1)
    with pytest.raises(ValueError, match="lacks trainable"):
        single_gradient_unlearn(w0, {"weight": torch.zeros(1, 5)}, MSE, x, y, lr=0.1)


def test_initial_weights_given_three_ways_give_the_same_result():
    """w₀ as a module, a state dict or a flat tensor: only its trainable weights count (model_t's buffers stay)."""
    from unrolling_lib.models import SmallCNN

    torch.manual_seed(0)
    w0 = SmallCNN(batch_norm=True).double()
    model_t = copy.deepcopy(w0)
    with torch.no_grad():
        for p in model_t.parameters():
            p.add_(0.01 * torch.randn_like(p))
        model_t.bn1.running_mean.add_(1.0)  # buffers differ between the two models
    x, y = torch.randn(8, 1, 8, 8, dtype=torch.float64), torch.randint(0, 10, (8,))
    loss = torch.nn.functional.cross_entropy
    results = [single_gradient_unlearn(model_t, w, loss, x, y, lr=0.1, train_mode=False)
               for w in (w0, w0.state_dict(), flat_weights(w0))]
    assert verification_error(results[0], results[1]) == 0.0 and verification_error(results[0], results[2]) == 0.0
    assert torch.equal(results[0].bn1.running_mean, model_t.bn1.running_mean)


def test_errors_name_the_callers_parameters():
    with pytest.raises(ValueError, match="^model_t must be a torch.nn.Module; got int"):
        single_gradient_unlearn(1, torch.zeros(3), MSE, torch.zeros(1, 2), torch.zeros(1, 1), lr=0.1)


def test_batch_gradient_is_autograd_on_a_copy_and_leaves_the_model_alone() -> None:
    from unrolling_lib.losses import batch_loss, make_loss
    from unrolling_lib.models import build_model_for
    from unrolling_lib.params import trainable_weights
    from unrolling_lib.unlearning import batch_gradient

    torch.manual_seed(0)
    model = build_model_for("small_resnet", (1, 8, 8), 10, seed=0)
    other = build_model_for("small_resnet", (1, 8, 8), 10, seed=1)
    x, y = torch.randn(16, 1, 8, 8), torch.randint(0, 10, (16,))
    loss_fn = make_loss(5.0)
    model.eval()  # the gradient is still taken in train mode, and the mode restored
    before = copy.deepcopy(model.state_dict())
    for weights, source in ((None, model), (trainable_weights(model, other), other)):
        twin = copy.deepcopy(model)
        twin.load_state_dict({**model.state_dict(), **{n: p for n, p in source.named_parameters()}})
        twin.train()
        expected = torch.autograd.grad(batch_loss(loss_fn, twin(x), y), [p for p in twin.parameters()])
        got = batch_gradient(model, loss_fn, x, y, weights=weights)
        for g, e in zip(got, expected, strict=True):
            torch.testing.assert_close(g, e, rtol=1e-6, atol=1e-8)
    for name, value in model.state_dict().items():  # BatchNorm statistics and weights untouched
        assert torch.equal(value, before[name]), name
    assert all(p.grad is None for p in model.parameters()) and not model.training
