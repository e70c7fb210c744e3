"""Outputs vs weights (§4.2): permuting hidden units, and interpolating between nearby models."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from unrolling_lib.metrics import flat_params, verification_error
from unrolling_lib.models import MLP
from unrolling_lib.profiles import ParameterError
from unrolling_lib.theory import symmetry as sym


def _mlp(hidden: tuple[int, ...], seed: int = 0) -> MLP:
    torch.manual_seed(seed)
    return MLP(in_features=6, hidden=hidden, num_classes=4).double()


@pytest.mark.parametrize("hidden", [(5,), (7, 3)])
def test_permutation_keeps_outputs_and_moves_weights(hidden: tuple[int, ...]) -> None:
    model = _mlp(hidden)
    before = flat_params(model).clone()
    perms = [sym.random_permutation(h, seed=i) for i, h in enumerate(hidden)]
    permuted = sym.permute_hidden(model, perms)
    x = torch.randn(50, 6, dtype=torch.float64)
    assert torch.allclose(model(x), permuted(x), rtol=1e-12, atol=1e-12)
    assert verification_error(model, permuted) > 0.1
    assert torch.equal(flat_params(model), before)  # the original is untouched
    inverse = [torch.argsort(p) for p in perms]
    restored = sym.permute_hidden(permuted, inverse)
    assert verification_error(model, restored) == 0.0


def test_single_layer_and_derangement() -> None:
    model = _mlp((7, 3))
    perm = sym.random_permutation(3, seed=4)
    assert not (perm == torch.arange(3)).any()
    permuted = sym.permute_hidden(model, perm, layer=1)
    first_model = [m for m in model.net if isinstance(m, torch.nn.Linear)][0]
    first_perm = [m for m in permuted.net if isinstance(m, torch.nn.Linear)][0]
    assert torch.equal(first_model.weight, first_perm.weight)  # layer 0 untouched
    x = torch.randn(20, 6, dtype=torch.float64)
    assert torch.allclose(model(x), permuted(x), rtol=1e-12, atol=1e-12)


def test_bad_permutations_are_refused() -> None:
    model = _mlp((5,))
    with pytest.raises(ParameterError, match="permutation"):
        sym.permute_hidden(model, torch.tensor([0, 0, 1, 2, 3]))
    with pytest.raises(ParameterError, match="layer"):
        sym.permute_hidden(model, torch.arange(5), layer=2)
    with pytest.raises(ParameterError, match="MLP"):
        sym.permute_hidden(torch.nn.Linear(2, 2), torch.arange(2))
    with pytest.raises(ParameterError, match="width"):
        sym.random_permutation(1)


def test_interpolation_ratio_tends_to_the_directional_derivative() -> None:
    a, b = _mlp((8,), seed=0), _mlp((8,), seed=0)
    with torch.no_grad():
        for p in b.parameters():
            p.add_(0.01 * torch.randn_like(p))
    x = torch.randn(40, 6, dtype=torch.float64)
    table = sym.interpolation_table(a, b, x, np.logspace(-6, 0, 7))
    assert table["weight_difference"].iloc[-1] == pytest.approx(verification_error(a, b))
    with torch.no_grad():
        direct = float((a(x) - b(x)).norm(dim=1).max())
    assert table["output_difference"].iloc[-1] == pytest.approx(direct, rel=1e-10)
    assert table["ratio"].iloc[0] == pytest.approx(table["limit"].iloc[0], rel=1e-5)
    assert (table["ratio"] < 1.5 * table["limit"]).all()


def test_nearby_models_and_permutation_check() -> None:
    pair = sym.train_nearby_models(hidden=(8,), subset=64, batch_size=16, epochs=1, lr=0.1, skip=1)
    check = sym.permutation_check(pair).set_index("compared with M")
    permuted, retrained = check.iloc[0], check.iloc[1]
    assert permuted["max output difference"] < 1e-12
    assert retrained["max output difference"] > 1e-6
    assert permuted["verification error ‖w − w_other‖₂"] > 10 * retrained["verification error ‖w − w_other‖₂"]


def test_symmetry_figure_has_both_panels() -> None:
    a = _mlp((4,))
    b = sym.permute_hidden(a, sym.random_permutation(4))
    x = torch.randn(10, 6, dtype=torch.float64)
    near = sym.interpolation_table(a, _mlp((4,), seed=1), x, sym.default_alphas(5))
    path = sym.interpolation_table(a, b, x, sym.linear_path_alphas(5))
    fig = sym.symmetry_figure(near, path, verification_error(a, b))
    assert len(fig.data) == 3
    with pytest.raises(ParameterError, match="alphas"):
        sym.default_alphas(1)


def test_permute_all_hidden_moves_every_unit_of_every_layer() -> None:
    torch.manual_seed(0)
    model = MLP(64, hidden=(6, 5), num_classes=3).double()
    permuted = sym.permute_all_hidden(model, seed=3)
    x = torch.randn(7, 64, dtype=torch.float64)
    assert torch.allclose(model(x), permuted(x), atol=1e-12)
    # a derangement in each hidden layer: every row of both hidden weight matrices has moved
    for a, b in zip(list(model.parameters())[:4:2], list(permuted.parameters())[:4:2], strict=True):
        assert all(not torch.equal(a[i], b[i]) for i in range(a.shape[0]))
    explicit = sym.permute_hidden(model, [sym.random_permutation(6, 3), sym.random_permutation(5, 4)])
    assert verification_error(explicit, permuted) == 0.0
