"""σ: the Hessian's eigenvalue of largest magnitude, against the exact dense Hessian and ``eigvalsh``."""

from __future__ import annotations

import copy
import math

import pytest
import torch
from torch import nn
from torch.func import functional_call

from unrolling_lib import curvature as curvature_module
from unrolling_lib.curvature import EigenResult, HVPOperator, hvp, sigma, top_eigenvalue
from unrolling_lib.params import eval_mode

CE = nn.CrossEntropyLoss()


def exact_hessian(model: nn.Module, loss_fn, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Dense Hessian over the trainable parameters in float64, model in eval mode (a float64 copy)."""
    m = copy.deepcopy(model).double().eval()
    names = [n for n, p in m.named_parameters() if p.requires_grad]
    shapes = [p.shape for n, p in m.named_parameters() if p.requires_grad]
    fixed = {n: p.detach() for n, p in m.named_parameters() if not p.requires_grad}
    fixed |= dict(m.named_buffers())
    flat0 = torch.cat([p.detach().reshape(-1) for n, p in m.named_parameters() if p.requires_grad])

    def loss_of(flat: torch.Tensor) -> torch.Tensor:
        params, offset = {}, 0
        for n, s in zip(names, shapes, strict=True):
            k = math.prod(s)
            params[n] = flat[offset:offset + k].view(s)
            offset += k
        return loss_fn(functional_call(m, params | fixed, (x.double(),)), y)

    return torch.autograd.functional.hessian(loss_of, flat0)


def largest_magnitude(h: torch.Tensor) -> float:
    ev = torch.linalg.eigvalsh(h)
    return float(ev[ev.abs().argmax()])


def mlp(activation: type[nn.Module] = nn.Tanh) -> nn.Module:
    return nn.Sequential(nn.Flatten(), nn.Linear(6, 5), activation(), nn.Linear(5, 3))


class TinyCNN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 3, 3, padding=1)
        self.bn = nn.BatchNorm2d(3)
        self.fc = nn.Linear(3 * 4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = nn.functional.avg_pool2d(torch.tanh(self.bn(self.conv(x))), 2)
        return self.fc(out.flatten(1))


def _data(shape: tuple[int, ...], n: int = 16, classes: int = 3, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(n, *shape, generator=gen), torch.randint(0, classes, (n,), generator=gen)


def _trained_cnn(seed: int = 0) -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    """A tiny CNN with BatchNorm whose running statistics are not the defaults (a few train-mode steps)."""
    torch.manual_seed(seed)
    model = TinyCNN()
    x, y = _data((1, 4, 4), n=24, seed=seed)
    opt = torch.optim.SGD(model.parameters(), lr=0.2)
    for _ in range(5):
        opt.zero_grad()
        CE(model(x), y).backward()
        opt.step()
    return model, x, y


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_tiny_mlp_matches_eigvalsh(dtype: torch.dtype, seed: int) -> None:
    torch.manual_seed(seed)
    model = mlp().to(dtype)
    x, y = _data((6,), seed=seed)
    exact = largest_magnitude(exact_hessian(model, CE, x, y))
    result = top_eigenvalue(model, CE, x.to(dtype), y)
    assert result.converged
    assert abs(result.value - exact) <= 1e-3 * abs(exact)
    assert result.vector.dtype == dtype and result.vector.shape == (sum(p.numel() for p in model.parameters()),)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("seed", [0, 1])
def test_tiny_cnn_with_batchnorm_matches_eigvalsh(dtype: torch.dtype, seed: int) -> None:
    model, x, y = _trained_cnn(seed)
    model = model.to(dtype)
    exact = largest_magnitude(exact_hessian(model, CE, x, y))  # float64 Hessian of the same weights
    result = top_eigenvalue(model, CE, x.to(dtype), y)
    assert result.converged
    assert abs(result.value - exact) <= 1e-3 * abs(exact)


def test_relu_mlp_and_frozen_parameters() -> None:
    torch.manual_seed(3)
    model = mlp(nn.ReLU).double()
    model[1].bias.requires_grad_(False)
    x, y = _data((6,), seed=3)
    exact = largest_magnitude(exact_hessian(model, CE, x, y))
    result = top_eigenvalue(model, CE, x.double(), y)
    assert abs(result.value - exact) <= 1e-3 * abs(exact)
    assert result.vector.numel() == sum(p.numel() for p in model.parameters() if p.requires_grad)


def test_negative_eigenvalue_of_largest_magnitude_keeps_its_sign() -> None:
    torch.manual_seed(4)
    model = mlp().double()
    x, y = _data((6,), seed=4)

    def concave(out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return -CE(out, target) - 0.5 * (out**2).mean()

    exact = largest_magnitude(exact_hessian(model, concave, x, y))
    assert exact < 0
    result = top_eigenvalue(model, concave, x.double(), y)
    assert abs(result.value - exact) <= 1e-3 * abs(exact)
    assert sigma(result) == pytest.approx(abs(result.value))
    with pytest.warns(RuntimeWarning, match="negative"):
        assert math.isnan(sigma(result, "paper"))


def test_hvp_equals_dense_product() -> None:
    model, x, y = _trained_cnn(1)
    model = model.double()
    h = exact_hessian(model, CE, x, y)
    v = torch.randn(h.shape[0], dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(hvp(model, CE, x.double(), y, v), h @ v, rtol=1e-9, atol=1e-11)


def test_small_problem_is_solved_exactly() -> None:
    # Linear regression with 3 weights: the Krylov space is the whole space after 3 products.
    model = nn.Linear(3, 1, bias=False).double()
    x, _ = _data((3,), n=10)
    x = x.double()
    y = torch.zeros(10, 1, dtype=torch.float64)
    mse = nn.MSELoss()
    exact = largest_magnitude(2 * x.T @ x / 10)
    result = top_eigenvalue(model, mse, x, y, tol=1e-9)
    assert result.converged and result.hvp_count <= 3
    assert result.value == pytest.approx(exact, rel=1e-10)


def test_warm_start_needs_fewer_products() -> None:
    torch.manual_seed(5)
    model = mlp().double()
    x, y = _data((6,), n=32, seed=5)
    cold = top_eigenvalue(model, CE, x.double(), y)
    opt = torch.optim.SGD(model.parameters(), lr=0.05)  # one SGD step, as between two σ samples
    opt.zero_grad()
    CE(model(x.double()), y).backward()
    opt.step()
    exact = largest_magnitude(exact_hessian(model, CE, x, y))
    cold_after = top_eigenvalue(model, CE, x.double(), y)
    warm = top_eigenvalue(model, CE, x.double(), y, init=cold)
    warm_vec = top_eigenvalue(model, CE, x.double(), y, init=cold.vector)
    assert warm.hvp_count < cold_after.hvp_count
    assert warm_vec.hvp_count == warm.hvp_count
    for r in (cold_after, warm):
        assert abs(r.value - exact) <= 1e-3 * abs(exact)


def _eigenpairs_by_magnitude(h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    values, vectors = torch.linalg.eigh(h)
    order = values.abs().argsort(descending=True)
    return values[order], vectors[:, order]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_warm_start_that_misses_the_top_eigenvector(seed: int) -> None:
    """Started on the second eigenvector, or on any vector orthogonal to the first, Lanczos converges to λ₂:
    the Krylov space stays orthogonal to the top eigenvector, so no stopping rule could tell. With a fresh
    part in the start (``fresh``) the top eigenvalue is found from both."""
    torch.manual_seed(seed)
    model = mlp().double()
    x, y = _data((6,), n=32, seed=seed)
    values, vectors = _eigenpairs_by_magnitude(exact_hessian(model, CE, x, y))
    top, second = float(values[0]), vectors[:, 1]
    blind = top_eigenvalue(model, CE, x.double(), y, init=second)
    assert blind.value == pytest.approx(float(values[1]), rel=1e-6)  # the limit that ``fresh`` is for
    gen = torch.Generator().manual_seed(seed)
    away = torch.randn(len(second), generator=gen, dtype=torch.float64)
    away -= (away @ vectors[:, 0]) * vectors[:, 0]  # orthogonal to the top eigenvector, not an eigenvector
    for start in (second, away):
        result = top_eigenvalue(model, CE, x.double(), y, init=start, fresh=0.1, seed=seed)
        assert result.converged
        assert abs(result.value - top) <= 1e-3 * abs(top)


def test_a_fresh_part_leaves_a_good_warm_start_cheap() -> None:
    model, x, y = _trained_cnn(0)
    x = x.double()
    model = model.double()
    exact = largest_magnitude(exact_hessian(model, CE, x, y))
    cold = top_eigenvalue(model, CE, x, y)
    warm = top_eigenvalue(model, CE, x, y, init=cold, fresh=0.1)
    assert abs(warm.value - exact) <= 1e-3 * abs(exact)
    assert warm.hvp_count < cold.hvp_count
    assert top_eigenvalue(model, CE, x, y, fresh=0.1).hvp_count == cold.hvp_count  # no init: no effect
    with pytest.raises(ValueError, match="fresh="):
        top_eigenvalue(model, CE, x, y, init=cold, fresh=-0.1)


@pytest.mark.parametrize("start_training", [True, False])
def test_mode_is_restored_and_nothing_else_changes(start_training: bool) -> None:
    model, x, y = _trained_cnn(0)
    model.train(start_training)
    model.zero_grad(set_to_none=True)
    buffers = {k: v.clone() for k, v in model.state_dict().items()}
    rng = torch.get_rng_state()
    top_eigenvalue(model, CE, x, y)
    assert all(m.training == start_training for m in model.modules())
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in buffers.items())  # BN stats untouched
    assert all(p.grad is None for p in model.parameters())
    assert torch.equal(rng, torch.get_rng_state())  # the global random state is left alone


def test_mixed_modes_restored_and_eval_used() -> None:
    model, x, y = _trained_cnn(0)
    model.train()
    model.bn.eval()  # e.g. a frozen BatchNorm inside a training model
    seen = []
    model.register_forward_pre_hook(lambda m, inp: seen.append(m.bn.training))
    top_eigenvalue(model, CE, x, y)
    assert seen and not any(seen)  # evaluated in eval mode
    assert model.training and model.conv.training and not model.bn.training


def test_mode_restored_on_error() -> None:
    model, x, y = _trained_cnn(0)
    model.train()

    def broken(out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        top_eigenvalue(model, broken, x, y)
    assert all(m.training for m in model.modules())
    with eval_mode(model):
        assert not model.training
    assert model.training


def test_max_iter_reached_warns_and_reports() -> None:
    torch.manual_seed(6)
    model = mlp().double()
    x, y = _data((6,), seed=6)
    with pytest.warns(RuntimeWarning, match="max_iter=2"):
        result = top_eigenvalue(model, CE, x.double(), y, tol=1e-12, max_iter=2)
    assert isinstance(result, EigenResult) and not result.converged and result.hvp_count == 2


def test_bad_arguments() -> None:
    model = mlp()
    x, y = _data((6,))
    with pytest.raises(ValueError, match="tol="):
        top_eigenvalue(model, CE, x, y, tol=0.0)
    with pytest.raises(ValueError, match="max_iter="):
        top_eigenvalue(model, CE, x, y, max_iter=0)
    with pytest.raises(ValueError, match="init must have"):
        top_eigenvalue(model, CE, x, y, init=torch.ones(3))
    with pytest.raises(ValueError, match="^sigma_mode='max' is not allowed; choose one of 'spectral', 'paper'"):
        sigma(1.0, "max")


def test_sigma_modes() -> None:
    r = EigenResult(value=4.0, vector=torch.ones(1), hvp_count=1, converged=True, error_estimate=0.0)
    assert sigma(r) == 4.0 and sigma(r, "paper") == 2.0 and sigma(-9.0) == 9.0


def test_restarted_lanczos_still_matches(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(curvature_module, "_MAX_BASIS", 3)  # restart from the Ritz vector every 3 products
    torch.manual_seed(7)
    model = mlp().double()
    x, y = _data((6,), seed=7)
    exact = largest_magnitude(exact_hessian(model, CE, x, y))
    result = top_eigenvalue(model, CE, x.double(), y, max_iter=300)
    assert result.converged and result.hvp_count > 3
    assert abs(result.value - exact) <= 1e-3 * abs(exact)


def test_scalar_products_are_accurate_on_long_float32_vectors() -> None:
    # Millions of same-sign terms, as v·Hv near an eigenvector: a plain float32 BLAS dot drifts here.
    a = torch.full((1 << 23,), 0.1, dtype=torch.float32)
    exact = float(a.double().pow(2).sum())
    assert curvature_module._dot(a, a) == pytest.approx(exact, rel=1e-5)
    assert curvature_module._norm(a) == pytest.approx(math.sqrt(exact), rel=1e-5)


# -- the operator itself, materialised against a dense Hessian ------------------------------------------------


def _operator_case(seed: int = 0):
    """A float64 TinyCNN in eval mode (BatchNorm on running statistics), a batch, and its dense Hessian."""
    torch.manual_seed(seed)
    model = TinyCNN().double()
    model.train()
    model(torch.randn(16, 1, 4, 4, dtype=torch.float64))  # move BatchNorm's running statistics off 0 and 1
    model.eval()
    x, y = torch.randn(6, 1, 4, 4, dtype=torch.float64), torch.randint(0, 3, (6,))
    return model, x, y, exact_hessian(model, CE, x, y)


def test_operator_materialised_is_the_dense_hessian():
    model, x, y, dense = _operator_case()
    op = HVPOperator(model, CE, x, y)
    assert op.shape == dense.shape == (op.numel, op.numel) and op.dtype == torch.float64
    columns = op @ torch.eye(op.numel, dtype=torch.float64)  # H @ I, one product per column
    assert op.count == op.numel
    torch.testing.assert_close(columns, dense, rtol=1e-10, atol=1e-12)
    v = torch.randn(op.numel, dtype=torch.float64)
    torch.testing.assert_close(op @ v, dense @ v, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(op.matvec(v), op.matvec(v), rtol=0, atol=0)  # repeated products agree exactly


def test_operator_is_symmetric_and_exports_to_scipy():
    import numpy as np
    from scipy.sparse.linalg import eigsh

    model, x, y, dense = _operator_case(seed=1)
    op = HVPOperator(model, CE, x, y)
    u, v = torch.randn(op.numel, dtype=torch.float64), torch.randn(op.numel, dtype=torch.float64)
    assert float(u @ (op @ v)) == pytest.approx(float(v @ (op @ u)), rel=1e-12)  # u·Hv = v·Hu
    lin = op.to_scipy()
    m = np.random.default_rng(0).standard_normal((op.numel, 3))
    np.testing.assert_allclose(lin @ m, dense.numpy() @ m, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(lin.rmatvec(m[:, 0]), dense.numpy() @ m[:, 0], rtol=1e-10, atol=1e-12)
    top = eigsh(lin, k=1, which="LM", return_eigenvectors=False)[0]
    assert top == pytest.approx(largest_magnitude(dense), rel=1e-8)


def test_operator_refuses_a_wrong_vector_shape():
    model, x, y, _ = _operator_case()
    op = HVPOperator(model, CE, x, y)
    with pytest.raises(ValueError, match=f"vector must be flat with {op.numel} entries"):
        op @ torch.zeros(op.numel + 1, dtype=torch.float64)
    with pytest.raises(ValueError, match=rf"matrix must have shape \({op.numel}, k\)"):
        op.matmat(torch.zeros(3, 2, dtype=torch.float64))


def test_undefined_sigma_is_refused_not_reported_as_converged():
    model, x, y, _ = _operator_case()
    with pytest.raises(ValueError, match="^inputs and targets must hold the same, non-zero number of samples"):
        top_eigenvalue(model, CE, x[:0], y[:0])
    broken = copy.deepcopy(model)
    with torch.no_grad():
        broken.fc.weight[0, 0] = float("nan")
    with pytest.raises(ValueError, match="^model and batch give a loss gradient with nan or inf entries"):
        top_eigenvalue(broken, CE, x, y)
