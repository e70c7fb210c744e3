"""§8.3's verification experiment: the protocol recomputed by hand, the quick profile's findings, resuming."""

from __future__ import annotations

import copy
import inspect

import numpy as np
import pandas as pd
import pytest
import torch

from unrolling_lib import setup
from unrolling_lib.data import BatchOrder, batch_tensors, load_digits_dataset
from unrolling_lib.experiments.verification import (
    VERIFICATION_COLUMNS,
    VERIFICATION_DEFAULTS,
    _finetune_order,
    check_verification_params,
    summarize_verification,
    unlearned_batch_sensitivity,
    verification_experiment,
)
from unrolling_lib.losses import sd_loss
from unrolling_lib.metrics import pearson
from unrolling_lib.models import build_model
from unrolling_lib.validation import ParameterError

SMALL = dict(pretrain_steps=20, finetune_steps=30, verify_every=10, sigma_every=10, progress=False, device="cpu")


@pytest.fixture(scope="module")
def quick():
    """The quick profile as a chapter runs it (digits, small CNN, γ ∈ {0, 5, 10, 20}, code scaling)."""
    return verification_experiment(progress=False, device="cpu", seeds=[0]).table


def sgd(model, data, batches, lr, gamma):
    params = list(model.parameters())
    for indices in batches:
        x, y = batch_tensors(data, indices)
        grads = torch.autograd.grad(sd_loss(model(x), y, gamma), params)
        with torch.no_grad():
            for p, g in zip(params, grads, strict=True):
                p.sub_(lr * g)


def flat(model):
    return torch.cat([p.detach().double().reshape(-1) for p in model.parameters()])


def protocol_by_hand(gamma: float, lr: float, at: str = "initial"):
    """§8.3 written out for SMALL: M_N, then M (x̂₁ … x̂_t) and M′ (x̂₂ … x̂_t) from it, and
    w″ = w_t + η ∇L(w; x̂₁) with w = w₀ (``at="initial"``) or w_t (``"final"``). Returns (data, w₀, M, M′, w″)."""
    data = load_digits_dataset(train=True)
    model = build_model("small_cnn", 10, seed=0, in_channels=1)
    sgd(model, data, BatchOrder(len(data), 128, steps=20, seed=0), 0.1, gamma)
    w0 = copy.deepcopy(model)
    order = BatchOrder(len(data), 32, steps=30, seed=1)
    retrained = copy.deepcopy(w0)
    sgd(model, data, order, lr, gamma)
    sgd(retrained, data, list(order)[1:], lr, gamma)
    x1, y1 = batch_tensors(data, order[0])
    where = w0 if at == "initial" else model
    grads = torch.autograd.grad(sd_loss(where(x1), y1, gamma), list(where.parameters()))
    unlearned = flat(model) + lr * torch.cat([g.double().reshape(-1) for g in grads])
    return data, w0, model, retrained, unlearned


def test_protocol_recomputed_by_hand():
    gamma, lr = 5.0, 0.01
    result = verification_experiment(gammas=[gamma], **SMALL)
    df = result.table
    assert list(df.columns) == list(VERIFICATION_COLUMNS) and df["t"].tolist() == [10, 20, 30]

    data, w0, model, retrained, unlearned = protocol_by_hand(gamma, lr)
    last = df.iloc[-1]
    v = float(torch.linalg.vector_norm(unlearned - flat(retrained)))
    change = float(torch.linalg.vector_norm(flat(model) - flat(w0)))
    sigmas = result.sigma
    sigma_avg = sigmas.loc[sigmas["t"] <= 30, "sigma"].mean()
    # w″ is held in float32, so v carries the rounding of the weights: a few eps32 · ‖w‖ (≈ 1e-6 here).
    assert last["v"] == pytest.approx(v, abs=8 * torch.finfo(torch.float32).eps * float(flat(model).norm()))
    assert last["weight_change"] == pytest.approx(change, rel=1e-5)
    assert last["v_limit"] == pytest.approx(float(torch.linalg.vector_norm(unlearned - flat(model))), rel=1e-5)
    # The same runs, unlearned with the gradient at w_t (§8.3 as printed) and by amnesiac unlearning: with plain
    # SGD and x̂₁ first, the update M applied at x̂₁ is −η∇L(w₀; x̂₁), so amnesiac equals single-gradient at w₀.
    *_, unlearned_final = protocol_by_hand(gamma, lr, at="final")
    tol = 8 * torch.finfo(torch.float32).eps * float(flat(model).norm())
    assert last["v_final"] == pytest.approx(float(torch.linalg.vector_norm(unlearned_final - flat(retrained))),
                                            abs=tol)
    assert last["v_final"] != pytest.approx(last["v"], abs=tol)
    assert last["v_amnesiac"] == pytest.approx(v, abs=tol)
    assert last["sigma_avg"] == pytest.approx(sigma_avg, rel=1e-12)
    assert last["e"] == pytest.approx(lr**2 * change / 30 * sigma_avg * (30 * 30 - 30) / 2, rel=1e-5)
    assert df["noise_floor"].eq(0.0).all()
    # σ at w₀, independently: the dense Hessian of the SD loss on the fixed Hessian batch, then eigvalsh.
    picked = np.sort(np.random.default_rng([0x4E55, 0]).choice(len(data), 32, replace=False))
    hx, hy = batch_tensors(data, picked)
    dense = w0.double()
    names_shapes = [(n, p.shape, p.numel()) for n, p in dense.named_parameters()]

    def loss_of(flat_w):
        params, offset = {}, 0
        for name, shape, size in names_shapes:
            params[name] = flat_w[offset:offset + size].view(shape)
            offset += size
        return sd_loss(torch.func.functional_call(dense, params, (hx.double(),)), hy, gamma)

    hessian = torch.autograd.functional.hessian(loss_of, flat(dense), vectorize=True)
    exact = float(torch.linalg.eigvalsh(hessian).abs().max())
    assert sigmas.loc[sigmas["t"] == 0, "sigma"].item() == pytest.approx(exact, rel=1e-3)


def test_amnesiac_subtracts_the_update_applied_at_a_later_step():
    gamma, lr, k = 0.0, 0.01, 4  # x̂ is the batch of fine-tuning step 4: its update is taken at w₄, not w₀
    df = verification_experiment(gammas=[gamma], unlearn_step=k, **SMALL).table
    data = load_digits_dataset(train=True)
    model = build_model("small_cnn", 10, seed=0, in_channels=1)
    sgd(model, data, BatchOrder(len(data), 128, steps=20, seed=0), 0.1, gamma)
    batches = list(BatchOrder(len(data), 32, steps=30, seed=1))  # the forgotten batch is step k of the order
    retrained = copy.deepcopy(model)
    sgd(model, data, batches[:k], lr, gamma)
    before = flat(model)
    sgd(model, data, batches[k:k + 1], lr, gamma)
    update = flat(model) - before
    sgd(model, data, batches[k + 1:], lr, gamma)
    sgd(retrained, data, batches[:k] + batches[k + 1:], lr, gamma)
    expected = float(torch.linalg.vector_norm(flat(model) - update - flat(retrained)))
    last = df.iloc[-1]
    tol = 8 * torch.finfo(torch.float32).eps * float(flat(model).norm())
    assert last["v_amnesiac"] == pytest.approx(expected, abs=tol)
    assert last["v_amnesiac"] != pytest.approx(last["v"], rel=1e-3)  # the gradient at w₀ is another step


def test_after_one_step_unlearning_is_exact_and_e_is_zero():
    df = verification_experiment(gammas=[0.0], **{**SMALL, "finetune_steps": 3, "verify_every": 1}).table
    first = df.iloc[0]
    assert first["t"] == 1 and first["e"] == 0.0 and first["v"] < 1e-6  # w″ = w₁ + η∇L(w₀; x̂₁) = w₀ = w′
    assert df["v"].iloc[-1] > 1e-6


def test_quick_profile_directions(quick):
    """What the quick profile shows, asserted as measured (t = 400: ‖Δw‖ 0.60, 0.64, 0.73, 0.06 and e 0.26,
    0.28, 0.26, 0.03 for γ = 0, 5, 10, 20).

    Holds: it runs in well under a minute; the noise floor on a CPU is 0; at γ = 20 the weight change and e
    are far below γ = 0; e grows with t. Does not hold as in the paper: ‖Δw‖ and e are not monotone in γ
    (γ = 5 and 10 are about as large as γ = 0), and Pearson(e, v) over t at γ = 0 is about 0.74, below 0.8:
    v saturates within a few dozen steps (η·σ ≈ 0.2 here) while e keeps growing like t·‖Δw‖.
    """
    df = quick
    assert len(df) == 4 * 16 and sorted(df["gamma"].unique()) == [0.0, 5.0, 10.0, 20.0]
    assert df["noise_floor"].eq(0.0).all() and (df[["e", "v", "weight_change", "sigma_avg"]] > 0).all().all()
    summary = summarize_verification(df)
    final = summary.table.set_index("gamma")
    assert final.loc[20.0, "weight_change"] < 0.5 * final.loc[0.0, "weight_change"]
    assert final.loc[20.0, "e"] < 0.5 * final.loc[0.0, "e"]
    assert final.loc[20.0, "v"] < final.loc[0.0, "v"]
    for _, part in df.groupby("gamma"):
        assert np.all(np.diff(part.sort_values("t")["e"].to_numpy()) > 0)
    base = df[df["gamma"] == 0.0]
    assert base["v"].iloc[-1] > base["v"].iloc[0]
    assert pearson(base["e"], base["v"]) > 0.5
    assert final.loc[0.0, "pearson_e_v_over_t"] == pytest.approx(pearson(base["e"], base["v"]))
    assert (final["accuracy"] > 0.6).all()
    assert summary.pearson_over_gamma == pytest.approx(pearson(final["e"], final["v"]))


def test_resume_skips_finished_gammas(tmp_path, monkeypatch):
    from unrolling_lib.experiments import verification as experiments

    first = verification_experiment(gammas=[0.0, 5.0], checkpoint_dir=tmp_path, **SMALL)
    assert (tmp_path / "gamma_0.0.csv").exists() and (tmp_path / "pretrained_gamma_5.0.pt").exists()
    (tmp_path / "gamma_5.0.csv").unlink()
    done = []
    original = experiments._one_gamma
    monkeypatch.setattr(experiments, "_one_gamma", lambda gamma, **kw: done.append(gamma) or original(gamma, **kw))
    again = verification_experiment(gammas=[0.0, 5.0], checkpoint_dir=tmp_path, **SMALL)
    assert done == [5.0]  # γ = 0 was read back, γ = 5 recomputed (from the cached pre-trained model)
    np.testing.assert_allclose(again.table.to_numpy(dtype=float), first.table.to_numpy(dtype=float), rtol=1e-12)
    timing = ["seconds"]  # wall time of each σ sample: the only column a recomputation may change
    pd.testing.assert_frame_equal(again.sigma.drop(columns=timing), first.sigma.drop(columns=timing),
                                  check_exact=False, rtol=1e-12)
    with pytest.raises(ParameterError, match="differ in lr"):
        verification_experiment(gammas=[0.0], checkpoint_dir=tmp_path, **{**SMALL, "lr": 0.02})


def test_defaults_plug_into_setup():
    names = set(inspect.signature(verification_experiment).parameters)
    for profile, values in VERIFICATION_DEFAULTS.items():
        assert set(values) <= names, profile
    cfg = setup("quick", defaults=VERIFICATION_DEFAULTS, gammas=[0, 20], finetune_steps=20, pretrain_steps=10,
                verbose=False)
    df = verification_experiment(**cfg.params, seed=cfg.seed, device=cfg.device, progress=False).table
    assert df["gamma"].unique().tolist() == [0.0, 20.0] and df["t"].max() == 20
    with pytest.raises(ParameterError, match="gammas"):
        setup("quick", defaults=VERIFICATION_DEFAULTS, gammas="none", verbose=False)


def test_unlearn_batch_is_a_fixed_block_placed_at_the_unlearned_step():
    p = {**VERIFICATION_DEFAULTS["paper"], "finetune_steps": 50, "seed": 0, "unlearn_step": 3}
    block = np.arange(32 * 114, 32 * 115)
    for exclude in (False, True):
        order = _finetune_order(50_000, {**p, "exclude_unlearned": exclude})
        assert len(order) == 50 and np.array_equal(order[3], block)
        others = np.concatenate([order[i] for i in range(50) if i != 3])
        assert len(others) == 49 * 32 and len(np.unique(others)) == len(others)
        assert not np.isin(others, block).any() or not exclude
    # with the block's samples allowed back, a long enough run does see them again (later epochs)
    long = _finetune_order(320, {**p, "finetune_steps": 40, "unlearn_batch": 2, "exclude_unlearned": False})
    assert np.isin(np.concatenate([long[i] for i in range(40) if i != 3]), np.arange(64, 96)).any()
    kept_out = _finetune_order(320, {**p, "finetune_steps": 40, "unlearn_batch": 2, "exclude_unlearned": True})
    assert not np.isin(np.concatenate([kept_out[i] for i in range(40) if i != 3]), np.arange(64, 96)).any()


def test_bad_parameters_are_refused_before_any_work():
    for kwargs, name in [({"gammas": [-1.0]}, "gammas"), ({"gammas": [1.0, 1.0]}, "gammas"),
                         ({"unlearn_at": "middle"}, "unlearn_at"), ({"lr": 0}, "lr"),
                         ({"unlearn_step": 400}, "unlearn_step"),
                         ({"sigma_mode": "max"}, r"^sigma_mode='max' is not allowed"),
                         ({"scaling": "paper"}, "scaling"), ({"threads": 0}, "threads"),
                         ({"exclude_unlearned": True}, "exclude_unlearned")]:
        with pytest.raises(ParameterError, match=name):
            verification_experiment(progress=False, **kwargs)


def test_divergent_gamma_keeps_its_rows_and_says_so():
    with pytest.warns(RuntimeWarning, match=r"gamma=0 \(seed 0\) diverged.*step \d+ .*lr=30, gamma=0"):
        result = verification_experiment(gammas=[0.0], **{**SMALL, "lr": 30.0, "verify_every": 1})
    df = result.table
    assert list(result.diverged) == [0.0] and "lr=30" in result.diverged[0.0] and 0 < len(df) < 30
    assert df["t"].tolist() == list(range(1, len(df) + 1)) and df["noise_floor"].isna().all()


def test_sensitivity_reruns_the_protocol_once_per_forgotten_block():
    table = unlearned_batch_sensitivity([0, 3], **SMALL)
    assert table["unlearn_batch"].tolist() == [0, 3] and (table["gamma"] == 0.0).all()
    for _, row in table.iterrows():  # each row is the protocol itself with that block forgotten
        direct = verification_experiment(gammas=[0.0], unlearn_batch=int(row["unlearn_batch"]), **SMALL)
        assert row["v"] == direct.table.sort_values("t")["v"].iloc[-1]
    assert table["v"].iloc[0] != table["v"].iloc[1]  # a different batch forgotten, a different v
    with pytest.raises(ParameterError, match="blocks"):
        unlearned_batch_sensitivity([], **SMALL)


def test_unlearning_at_the_final_weights_uses_the_gradient_at_w_t():
    """unlearn_at="final" (the §8.3 formula as printed): w″ = w_t + η ∇L(w_t; x̂₁), recomputed by hand."""
    gamma, lr = 0.0, 0.01
    table = verification_experiment(gammas=[gamma], unlearn_at="final", **SMALL).table
    initial = verification_experiment(gammas=[gamma], **SMALL).table
    _, _, model, retrained, unlearned = protocol_by_hand(gamma, lr, at="final")
    v = float(torch.linalg.vector_norm(unlearned - flat(retrained)))
    tol = 8 * torch.finfo(torch.float32).eps * float(flat(model).norm())
    assert table["v"].iloc[-1] == pytest.approx(v, abs=tol)
    assert abs(table["v"].iloc[-1] - initial["v"].iloc[-1]) > 10 * tol  # a different w″ than at w₀
    pd.testing.assert_series_equal(table["e"], initial["e"])  # e does not depend on where w″ is taken


def test_paper_sigma_mode_is_the_square_root_of_the_top_eigenvalue():
    result = verification_experiment(gammas=[0.0], sigma_mode="paper", **SMALL)
    spectral = verification_experiment(gammas=[0.0], **SMALL)
    sig, ref = result.sigma, spectral.sigma
    positive = sig["eigenvalue"] > 0
    assert positive.all()  # a trained CNN's top eigenvalue on digits is positive
    np.testing.assert_allclose(sig["sigma"], np.sqrt(sig["eigenvalue"]), rtol=1e-12)
    np.testing.assert_allclose(ref["sigma"], ref["eigenvalue"].abs(), rtol=1e-12)
    last = result.table.iloc[-1]
    assert last["sigma_avg"] == pytest.approx(sig["sigma"].mean(), rel=1e-12)
    assert last["e"] == pytest.approx(spectral.table["e"].iloc[-1] * last["sigma_avg"]
                                      / spectral.table["sigma_avg"].iloc[-1], rel=1e-9)


def test_deterministic_mode_gives_the_same_numbers_on_a_cpu():
    """On a CPU the default kernels are already deterministic: deterministic=True changes no number, and two
    deterministic runs agree bit for bit."""
    a = verification_experiment(gammas=[5.0], deterministic=True, **SMALL).table
    b = verification_experiment(gammas=[5.0], deterministic=True, **SMALL).table
    plain = verification_experiment(gammas=[5.0], **SMALL).table
    pd.testing.assert_frame_equal(a, b, check_exact=True)
    pd.testing.assert_frame_equal(a, plain, check_exact=True)
    assert not torch.are_deterministic_algorithms_enabled()  # restored afterwards


def test_a_refused_call_leaves_its_checkpoint_folder_usable(tmp_path):
    """Every check runs before the folder is claimed: a call refused for its data set does not poison it."""
    with pytest.raises(ParameterError, match="^dataset='mnist' is not allowed"):
        verification_experiment(gammas=[0.0], dataset="mnist", checkpoint_dir=tmp_path, **SMALL)
    assert not any(tmp_path.iterdir())
    with pytest.raises(ParameterError, match="^hessian_batch_size=5000 is not allowed"):
        verification_experiment(gammas=[0.0], hessian_batch_size=5000, checkpoint_dir=tmp_path, **SMALL)
    assert not any(tmp_path.iterdir())
    verification_experiment(gammas=[0.0], checkpoint_dir=tmp_path, **{**SMALL, "finetune_steps": 2})


def test_checkpoints_keep_close_gammas_and_other_run_settings_apart(tmp_path):
    small = {**SMALL, "pretrain_steps": 2, "finetune_steps": 2, "verify_every": 1, "sigma_every": 1}
    first = verification_experiment(gammas=[1.0, 1.0000001], checkpoint_dir=tmp_path, **small)
    names = sorted(p.name for p in tmp_path.glob("gamma_*.csv"))
    assert names == ["gamma_1.0.csv", "gamma_1.0000001.csv"]  # one file each, not one shared `gamma_1.csv`
    assert first.table["gamma"].unique().tolist() == [1.0, 1.0000001]
    with pytest.raises(ParameterError, match="differ in threads"):
        verification_experiment(gammas=[1.0], checkpoint_dir=tmp_path, **{**small, "threads": 2})
    with pytest.raises(ParameterError, match="differ in deterministic"):
        verification_experiment(gammas=[1.0], checkpoint_dir=tmp_path, deterministic=True, **small)


@pytest.mark.parametrize(("override", "message"), [
    ({"finetune_steps": -5}, "finetune_steps=-5 is not allowed; use an int >= 1"),
    ({"lr": float("nan")}, "lr=nan is not allowed; use a finite number > 0"),
    ({"scaling": "eq"}, "scaling='eq' is not allowed; choose one of 'code', 'equation'"),
    ({"gammas": [0.0, 0.0]}, "gammas=[0.0, 0.0] is not allowed; use a non-empty list of distinct finite numbers >= 0"),
    ({"noise_floor": "no"}, "noise_floor='no' has the wrong type; expected bool like True"),
    ({"finetune_steps": 10, "unlearn_step": 10}, "unlearn_step=10 is not allowed; use a step of the fine-tuning "
                                                 "run, 0..9"),
])
def test_setup_refuses_what_the_experiment_would_refuse(override, message):
    """setup(check=...) applies the experiment's own rules to the chapter's values, before any work."""
    with pytest.raises(ParameterError) as err:
        setup("quick", defaults=VERIFICATION_DEFAULTS, check=check_verification_params, verbose=False, **override)
    assert str(err.value) == message
    with pytest.raises(ParameterError, match="^retries is not a parameter of the §8.3 experiment"):
        check_verification_params(**VERIFICATION_DEFAULTS["quick"], retries=3)


# --- several seeds, the evidence of each correlation, η·t·σ, and the released fine-tuning ---------------------


def test_seeds_are_independent_replicates_of_the_protocol(tmp_path):
    both = verification_experiment(gammas=[5.0], seeds=[0, 1], checkpoint_dir=tmp_path, **SMALL).table
    one = verification_experiment(gammas=[5.0], seed=1, **SMALL).table
    assert both["seed"].tolist() == [0] * 3 + [1] * 3
    second = both[both["seed"] == 1].reset_index(drop=True)
    pd.testing.assert_frame_equal(second, one)  # a seed of the list is that seed run alone, bit for bit (CPU)
    assert not np.allclose(both[both["seed"] == 0]["v"], second["v"])  # and the seeds differ
    assert (tmp_path / "seed_0" / "verification.csv").exists() and (tmp_path / "verification.csv").exists()
    again = verification_experiment(gammas=[5.0], seeds=[0, 1], checkpoint_dir=tmp_path, **SMALL).table
    pd.testing.assert_frame_equal(again, both)  # resumed from the checkpoints
    assert np.allclose(both["eta_t_sigma"], 0.01 * both["t"] * both["sigma_avg"], rtol=1e-12)


def test_summary_reports_each_correlation_with_n_and_interval():
    from unrolling_lib.metrics import correlation, increment_correlation

    rng = np.random.default_rng(0)
    rows = [{"seed": s, "gamma": g, "t": t, "e": t * (1 + g) + rng.normal(), "v": np.sqrt(t) + rng.normal(0, .1),
             "weight_change": 1.0, "sigma_avg": 2.0, "eta_t_sigma": 0.02 * t, "accuracy": 0.9, "noise_floor": 0.0}
            for s in (0, 1) for g in (0.0, 1.0, 2.0) for t in range(1, 9)]
    df = pd.DataFrame(rows)
    summary = summarize_verification(df)
    assert len(summary.table) == 6 and (summary.table["n_t"] == 8).all()
    part = df[(df["seed"] == 1) & (df["gamma"] == 2.0)]
    row = summary.table[(summary.table["seed"] == 1) & (summary.table["gamma"] == 2.0)].iloc[0]
    want, steps = correlation(part["e"], part["v"]), increment_correlation(part["e"], part["v"])
    assert (row["pearson_e_v_over_t"], row["pearson_low"], row["pearson_high"]) == (want.r, want.low, want.high)
    assert (row["pearson_increments"], row["increments_low"], row["increments_high"]) == (steps.r, steps.low,
                                                                                          steps.high)
    across = summary.across_gamma.set_index("seed")
    last = summary.table[summary.table["seed"] == 0]
    assert across.loc[0, "n"] == 3 and across.loc[0, "pearson"] == pytest.approx(pearson(last["e"], last["v"]))
    assert (across.loc[0, "low"], across.loc[0, "high"]) == (-1.0, 1.0)  # three γ values bound nothing
    assert summary.pooled.n == 6 and summary.pearson_over_gamma == summary.pooled.r


def _released_by_hand(gamma: float, lr: float, steps: int):
    """The released fine-tuning written out with torch.optim.SGD: the seeded order's first batch opens each
    epoch of the other samples; M′ skips it each time; w″ = w_t + η·m·∇L(w₀; block), m its uses so far."""
    data = load_digits_dataset(train=True)
    model = build_model("small_cnn", 10, seed=0, in_channels=1)
    sgd(model, data, BatchOrder(len(data), 128, steps=20, seed=0), 0.1, gamma)
    w0 = copy.deepcopy(model)
    block = BatchOrder(len(data), 32, steps=1, seed=1)[0]
    rest = np.setdiff1d(np.arange(len(data)), block)
    per_epoch = len(rest) // 32
    others = [rest[b] for b in BatchOrder(len(rest), 32, steps=steps, seed=1)]
    order = []
    while len(order) < steps:
        order += [block] + others[:per_epoch]
        others = others[per_epoch:]
    order = order[:steps]
    retrained = copy.deepcopy(w0)
    for net, batches in ((model, order), (retrained, [b for b in order if b is not block])):
        opt = torch.optim.SGD(net.parameters(), lr=lr, momentum=0.9, weight_decay=5e-4)
        net.train()
        for indices in batches:
            x, y = batch_tensors(data, indices)
            opt.zero_grad()
            sd_loss(net(x), y, gamma).backward()
            opt.step()
    uses = sum(1 for b in order if b is block)
    x1, y1 = batch_tensors(data, block)
    grads = torch.autograd.grad(sd_loss(w0(x1), y1, gamma), list(w0.parameters()))
    unlearned = flat(model) + lr * uses * torch.cat([g.double().reshape(-1) for g in grads])
    return float(torch.linalg.vector_norm(unlearned - flat(retrained))), uses


def test_released_finetuning_is_momentum_weight_decay_and_a_skip_every_epoch():
    from unrolling_lib.experiments.verification import RELEASED_FINETUNING

    steps = 100  # 44 other batches per epoch: the block opens steps 0, 45 and 90
    table = verification_experiment(gammas=[5.0], **{**SMALL, "finetune_steps": steps, "verify_every": 50},
                                    **RELEASED_FINETUNING).table
    v, uses = _released_by_hand(5.0, 0.01, steps)
    assert uses == 3
    last = table.iloc[-1]
    assert last["t"] == steps and last["v"] == pytest.approx(v, rel=1e-4, abs=1e-5)
    plain = verification_experiment(gammas=[5.0], **{**SMALL, "finetune_steps": steps, "verify_every": 50}).table
    assert not np.isclose(plain["v"].iloc[-1], last["v"])
    with pytest.raises(ParameterError, match="unlearn_step=2 is not allowed with unlearn_every_epoch"):
        verification_experiment(gammas=[0.0], unlearn_step=2, **SMALL, **RELEASED_FINETUNING)
    with pytest.raises(ParameterError, match="momentum="):
        verification_experiment(gammas=[0.0], momentum=1.0, **SMALL)
