"""Outputs vs weights (§4.2): permuting hidden units, and interpolating between nearby models."""

from __future__ import annotations

import inspect
import warnings

import numpy as np
import pytest
import torch

from unrolling_lib import setup
from unrolling_lib.metrics import verification_error
from unrolling_lib.models import MLP
from unrolling_lib.params import flat_weights
from unrolling_lib.theory import symmetry as sym
from unrolling_lib.validation import ParameterError


def _mlp(hidden: tuple[int, ...], seed: int = 0) -> MLP:
    torch.manual_seed(seed)
    return MLP(in_features=6, hidden=hidden, num_classes=4).double()


@pytest.mark.parametrize("hidden", [(5,), (7, 3)])
def test_permutation_keeps_outputs_and_moves_weights(hidden: tuple[int, ...]) -> None:
    model = _mlp(hidden)
    before = flat_weights(model).clone()
    perms = [sym.random_permutation(h, seed=i) for i, h in enumerate(hidden)]
    permuted = sym.permute_hidden(model, perms)
    x = torch.randn(50, 6, dtype=torch.float64)
    assert torch.allclose(model(x), permuted(x), rtol=1e-12, atol=1e-12)
    assert verification_error(model, permuted) > 0.1
    assert torch.equal(flat_weights(model), before)  # the original is untouched
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
    with pytest.raises(ParameterError, match="width"):
        sym.random_permutation(True)
    with pytest.raises(ParameterError, match="seed"):
        sym.random_permutation(4, seed=-1)
    with pytest.raises(ParameterError, match="perm has 1 permutations"):
        sym.permute_hidden(_mlp((5, 3)), [torch.arange(5)])


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


@pytest.fixture(scope="module")
def pair() -> sym.NearbyModels:
    return sym.train_nearby_models(hidden=(8,), subset=64, batch_size=16, epochs=1, lr=0.1, unlearn_step=1)


def test_nearby_models_and_permutation_check(pair: sym.NearbyModels) -> None:
    assert pair.unlearn_step == 1
    check = sym.permutation_check(pair)
    assert list(check.table.columns) == ["comparison", "max_output_difference", "mean_output_difference",
                                         "verification_error", "weight_norm"]
    assert list(check.table["comparison"]) == ["permuted", "retrained"]
    permuted, retrained = check.row("permuted"), check.row("retrained")
    assert permuted["max_output_difference"] < 1e-12
    assert retrained["max_output_difference"] > 1e-6
    assert permuted["verification_error"] > 10 * retrained["verification_error"]
    with pytest.raises(ParameterError, match="comparison"):
        check.row("original")


def test_permutation_check_carries_the_permuted_model_and_measures_it(pair: sym.NearbyModels) -> None:
    check = sym.permutation_check(pair, seed=2)
    # the model it carries is permute_all_hidden's, so a chapter need not permute a second time
    assert verification_error(check.permuted, sym.permute_all_hidden(pair.model, seed=2)) == 0.0
    # every number of the table, recomputed here from the parameters and the outputs
    x = pair.data.x
    with torch.no_grad():
        w = torch.cat([p.reshape(-1) for p in pair.model.parameters()])
        for name, other in (("permuted", check.permuted), ("retrained", pair.retrained)):
            row = check.row(name)
            diff = torch.linalg.vector_norm(pair.model(x) - other(x), dim=1)
            assert row["max_output_difference"] == pytest.approx(float(diff.max()), rel=1e-12, abs=1e-18)
            assert row["mean_output_difference"] == pytest.approx(float(diff.mean()), rel=1e-12, abs=1e-18)
            w_other = torch.cat([p.reshape(-1) for p in other.parameters()])
            assert row["verification_error"] == pytest.approx(float(torch.linalg.vector_norm(w - w_other)), rel=1e-12)
            assert row["weight_norm"] == pytest.approx(float(torch.linalg.vector_norm(w)), rel=1e-12)
    with pytest.raises(ParameterError, match="pair"):
        sym.permutation_check(pair.model)


def test_interpolation_paths_walk_towards_both_models(pair: sym.NearbyModels) -> None:
    check = sym.permutation_check(pair)
    paths = sym.interpolation_paths(pair, check.permuted, alphas=6)
    assert np.array_equal(paths.near["alpha"], sym.default_alphas(6))
    assert np.array_equal(paths.permuted_path["alpha"], sym.linear_path_alphas(6))
    direct = sym.interpolation_table(pair.model, pair.retrained, pair.data.x, sym.default_alphas(6))
    assert paths.near.equals(direct)
    assert paths.limit == direct["limit"].iloc[0]
    # each walk ends on its model: at α = 1 the weight difference is that model's verification error
    assert paths.near["weight_difference"].iloc[-1] == pytest.approx(check.row("retrained")["verification_error"])
    assert paths.permuted_path["weight_difference"].iloc[-1] == pytest.approx(
        check.row("permuted")["verification_error"])
    assert paths.permuted_path["output_difference"].iloc[-1] < 1e-12  # π(M) computes M's function
    with pytest.raises(ParameterError, match="alphas"):
        sym.interpolation_paths(pair, check.permuted, alphas=1)


def test_alphas_and_their_checks() -> None:
    alphas = sym.default_alphas(6)
    assert alphas[0] == pytest.approx(1e-5) and alphas[-1] == 1.0 and np.allclose(np.diff(np.log10(alphas)), 1.0)
    assert np.allclose(sym.linear_path_alphas(4), [0.25, 0.5, 0.75, 1.0])
    assert list(sym.linear_path_alphas(1)) == [1.0]
    with pytest.raises(ParameterError, match="count"):
        sym.default_alphas(1)
    with pytest.raises(ParameterError, match="count"):
        sym.linear_path_alphas(0)


def test_defaults_are_the_quick_profile_and_name_the_unlearned_step() -> None:
    quick = sym.SYMMETRY_DEFAULTS["quick"]
    assert "skip" not in quick and quick["unlearn_step"] == 5
    for profile in sym.SYMMETRY_DEFAULTS.values():
        assert set(profile) == set(quick)
    sig = inspect.signature(sym.train_nearby_models).parameters
    for name in ("subset", "batch_size", "epochs", "lr", "unlearn_step"):
        assert sig[name].default == quick[name], name
    assert list(sig["hidden"].default) == quick["hidden"]
    assert inspect.signature(sym.interpolation_paths).parameters["alphas"].default == quick["alphas"]
    with pytest.raises(ParameterError, match=r"hidden\[1\]"):
        sym.train_nearby_models(hidden=(8, 0))


@pytest.mark.parametrize(("override", "message"), [
    ({"epochs": -2}, "epochs=-2 is not allowed; use an int >= 1"),
    ({"lr": float("nan")}, "lr=nan is not allowed; use a finite number > 0"),
    ({"hidden": []}, "hidden=[] is not allowed; use a non-empty list of ints"),
    ({"hidden": [32, 0]}, "hidden[1]=0 is not allowed; use an int >= 1"),
    ({"batch_size": 600}, "batch_size=600 is not allowed; use an int in [1, 512]"),
    ({"unlearn_step": 48}, "unlearn_step=48 is not allowed; use an int in [0, 47]"),  # 3 epochs of 512 // 32 steps
    ({"unlearn_step": -1}, "unlearn_step=-1 is not allowed; use an int in [0, 47]"),
    ({"alphas": 1}, "alphas=1 is not allowed; use an int >= 2"),
])
def test_setup_refuses_what_the_study_would_refuse(override, message, pair: sym.NearbyModels) -> None:
    """setup(check=check_symmetry_params) applies the §4.2 functions' own rules to the chapter's values, before
    any work; train_nearby_models and interpolation_paths refuse the same values with the same line."""
    with pytest.raises(ParameterError) as err:
        setup("quick", defaults=sym.SYMMETRY_DEFAULTS, check=sym.check_symmetry_params, verbose=False, **override)
    assert str(err.value) == message
    values = {**sym.SYMMETRY_DEFAULTS["quick"], **override}
    alphas = values.pop("alphas")
    with pytest.raises(ParameterError) as direct:
        if alphas == sym.SYMMETRY_DEFAULTS["quick"]["alphas"]:
            sym.train_nearby_models(**values)
        else:
            sym.interpolation_paths(pair, pair.model, alphas=alphas)
    assert str(direct.value) == message
    with pytest.raises(ParameterError, match="^seed is not a parameter of the §4.2 study; known: alphas, batch_size"):
        sym.check_symmetry_params(**sym.SYMMETRY_DEFAULTS["quick"], seed=1)
    with pytest.raises(ParameterError, match="^the §4.2 parameters lack alphas, lr$"):
        sym.check_symmetry_params(**{k: v for k, v in sym.SYMMETRY_DEFAULTS["quick"].items()
                                     if k not in ("lr", "alphas")})


@pytest.mark.parametrize("profile", list(sym.SYMMETRY_DEFAULTS))
def test_every_profile_passes_the_checker_unchanged(profile: str) -> None:
    cfg = setup(profile, defaults=sym.SYMMETRY_DEFAULTS, check=sym.check_symmetry_params, verbose=False)
    assert cfg.params == sym.SYMMETRY_DEFAULTS[profile]


def test_quiet_jvp_silences_only_torchs_own_warning() -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with sym.quiet_jvp():
            # torch/jit/_script.py's own text
            warnings.warn("`torch.jit.script` is deprecated. Please switch to `torch.compile` or `torch.export`.",
                          FutureWarning, stacklevel=1)
            warnings.warn("something else", FutureWarning, stacklevel=1)
    assert [str(w.message) for w in caught] == ["something else"]


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


def test_argument_messages_name_the_parameter(pair: sym.NearbyModels) -> None:
    """Each check goes through unrolling_lib.validation: the message names the parameter, word for word."""
    a, x = _mlp((4,)), torch.randn(3, 6, dtype=torch.float64)
    with pytest.raises(ParameterError, match=r"^model must be a MLP; got Linear$"):
        sym.permute_hidden(torch.nn.Linear(2, 2), torch.arange(2))
    with pytest.raises(ParameterError, match=r"^hidden=8 is not allowed; use a non-empty list of ints$"):
        sym.train_nearby_models(hidden=8)
    with pytest.raises(ParameterError, match=r"^hidden=\(\) is not allowed; use a non-empty list of ints$"):
        sym.train_nearby_models(hidden=())
    with pytest.raises(ParameterError, match=r"^hidden\[1\]=0 is not allowed; use an int >= 1$"):
        sym.train_nearby_models(hidden=[8, 0])
    with pytest.raises(ParameterError,
                       match=r"^comparison='original' is not allowed; choose one of 'permuted', 'retrained'$"):
        sym.permutation_check(pair).row("original")
    with pytest.raises(ParameterError, match=r"^pair must be a NearbyModels; got MLP$"):
        sym.permutation_check(pair.model)
    with pytest.raises(ParameterError, match=r"^pair must be a NearbyModels; got MLP$"):
        sym.interpolation_paths(pair.model, pair.model)
    for alphas in (["a"], [0.5, 0.0], [], np.ones((2, 2))):
        with pytest.raises(ParameterError, match=r"^alphas=.* is not allowed; use a non-empty list of finite numbers "
                                                 r"> 0$"):
            sym.interpolation_table(a, _mlp((4,), seed=1), x, alphas)
