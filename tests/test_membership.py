"""§4.3 and §8.4: the membership signal in both modes by hand, the outputs the protocol records, the PRS of the
unlearned batch from the shadow's histograms, the attack's AUC, resume and bad input."""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.metrics import roc_auc_score

from unrolling_lib.data import BatchOrder, load_dataset
from unrolling_lib.experiments import membership as mem
from unrolling_lib.experiments import verification as ver
from unrolling_lib.experiments import verification_grid as vg
from unrolling_lib.models import build_model_for
from unrolling_lib.privacy import membership_signal, modified_entropy, privacy_risk_score, softmax_probs
from unrolling_lib.training import train
from unrolling_lib.validation import ParameterError

SPEC = mem.MEMBERSHIP_GRIDS["smoke"]


def test_the_signal_in_both_modes_by_hand() -> None:
    data = load_dataset("digits", train=True, subset=64, seed=0)
    model = build_model_for("small_vgg", data.x.shape[1:], data.num_classes, seed=0)
    train(model, data, BatchOrder(len(data), 16, steps=4, seed=0), lr=0.1, progress=False)
    right = membership_signal(model, data.x, data.y)
    assert right == pytest.approx(modified_entropy(softmax_probs(model, data.x), data.y.numpy()))
    before = copy.deepcopy(model.state_dict())
    released = membership_signal(model, data.x, data.y, mode="released")
    for name, value in model.state_dict().items():  # running statistics left alone
        assert torch.equal(value, before[name]), name
    twin = copy.deepcopy(model).train()
    with torch.no_grad():
        z = twin(data.x).double().numpy()
    y = data.y.numpy()
    by_hand = [-(1 - z[i, y[i]]) * np.log(max(z[i, y[i]], 1e-30))
               - sum(z[i, j] * np.log(max(1 - z[i, j], 1e-30)) for j in range(z.shape[1]) if j != y[i])
               for i in range(len(y))]
    assert released == pytest.approx(by_hand, rel=1e-9)
    with pytest.raises(ParameterError, match="mode='logits' is not allowed"):
        membership_signal(model, data.x, data.y, mode="logits")


@pytest.fixture(scope="module")
def run() -> mem.MembershipGrid:
    return mem.membership_grid(SPEC, progress=False)


def test_the_protocol_records_the_signal_of_each_model_on_the_forgotten_batch(run) -> None:
    params = vg.grid_settings(SPEC)[0]
    out = run.grid.outputs
    part = out[out["setting"] == 0]
    assert set(part["state"]) == set(mem.MODEL_STATES) and set(part["mode"]) == {"softmax", "released"}
    assert (part.groupby(["state", "mode"]).size() == params["batch_size"]).all()
    # M rebuilt by hand: the same pre-training and fine-tuning order, then the signal of x̂₁ (block 0)
    data = load_dataset(params["dataset"], train=True, subset=params["train_subset"], seed=0)
    model = build_model_for(params["model"], data.x.shape[1:], data.num_classes, seed=0)
    p = {**params, "seed": 0, "pretrain_lr": params["pretrain_lr"] or params["lr"]}
    train(model, data, BatchOrder(len(data), p["pretrain_batch_size"], steps=p["pretrain_steps"], seed=0),
          lr=p["pretrain_lr"], progress=False)
    train(model, data, ver._finetune_order(len(data), p), lr=p["lr"], progress=False)
    block = np.arange(params["batch_size"])
    expected = membership_signal(model, data.x[block], data.y[block])
    got = part[(part["state"] == "trained") & (part["mode"] == "softmax")].sort_values("sample")
    assert got["signal"].to_numpy() == pytest.approx(expected, rel=1e-6)
    assert got["label"].tolist() == data.y[block].tolist()
    unlearned = part[(part["state"] == "unlearned") & (part["mode"] == "softmax")].sort_values("sample")
    amnesiac = part[(part["state"] == "amnesiac") & (part["mode"] == "softmax")].sort_values("sample")
    assert amnesiac["signal"].to_numpy() == pytest.approx(unlearned["signal"].to_numpy(), rel=1e-5)  # x̂₁ first


def test_the_prs_is_read_from_the_shadows_histograms(run) -> None:
    params = vg.grid_settings(SPEC)[1]
    shadow = mem.shadow_signals(params, modes=["softmax"])["softmax"]
    row = run.table[(run.table["setting"] == 1) & (run.table["mode"] == "softmax")].iloc[0]
    out = run.grid.outputs
    part = out[(out["setting"] == 1) & (out["mode"] == "softmax") & (out["state"] == "unlearned")]
    prs = privacy_risk_score(shadow["in"], shadow["out"], shadow["in_labels"], shadow["out_labels"],
                             part["signal"].to_numpy(), part["label"].to_numpy().astype(np.int64))
    assert row["prs_unlearned"] == pytest.approx(prs.mean())
    labels = np.r_[np.ones(len(shadow["in"])), np.zeros(len(shadow["out"]))]
    assert row["attack_auc"] == pytest.approx(roc_auc_score(labels, -np.r_[shadow["in"], shadow["out"]]))
    data = load_dataset(params["dataset"], train=True, subset=params["train_subset"], seed=0)
    assert len(shadow["in"]) == len(data) // 2
    assert set(run.table.columns) == set(mem.MEMBERSHIP_COLUMNS) and len(run.table) == 2 * len(vg.grid_settings(SPEC))


def test_a_run_resumes_from_its_folder_without_training_again(tmp_path, monkeypatch) -> None:
    first = mem.membership_grid(SPEC, progress=False, checkpoint_dir=tmp_path, modes=["softmax"])
    monkeypatch.setattr(mem, "shadow_signals", lambda *a, **k: pytest.fail("a shadow was trained again"))
    monkeypatch.setattr(vg, "verification_experiment", lambda **k: pytest.fail("a setting ran again"))
    again = mem.membership_grid(SPEC, progress=False, checkpoint_dir=tmp_path, modes=["softmax"])
    pd.testing.assert_frame_equal(again.table, first.table, check_dtype=False)


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"modes": []}, r"modes=\[\] is not allowed"),
    ({"modes": ["logits"]}, r"modes='logits' is not allowed"),
    ({"spec": {**SPEC, "base": {**SPEC["base"], "record_outputs": False}}}, "record_outputs=True"),
])
def test_bad_input_is_refused_before_any_work(kwargs, match, monkeypatch) -> None:
    monkeypatch.setattr(vg, "verification_experiment", lambda **k: pytest.fail("work started"))
    spec = kwargs.pop("spec", SPEC)
    with pytest.raises(ParameterError, match=match):
        mem.membership_grid(spec, progress=False, **kwargs)


def test_prs_change_and_the_figures_by_hand() -> None:
    from unrolling_lib.figures.membership import attack_quality_figure, prs_by_gamma_figure, prs_vs_v_figure

    gammas = [0.0, 5.0, 10.0, 20.0]
    table = pd.DataFrame({"setting": range(4), "dataset": "digits", "model": "small_vgg", "gamma": gammas,
                          "mode": "softmax", "prs_trained": [0.6, 0.5, 0.55, 0.4],
                          "prs_unlearned": [0.3, 0.35, 0.2, 0.1],
                          "prs_amnesiac": [0.3, 0.35, 0.2, 0.1], "prs_retrained": [0.2] * 4,
                          "v": [1.0, 2.0, 3.0, 4.0], "v_amnesiac": [1.0, 2.0, 3.0, 4.0], "diverged": False})
    out = mem.prs_change(table).iloc[0]
    assert out["ratio"] == pytest.approx(2.0) and out["prs_before"] == 0.6 and out["prs_retrained"] == 0.2
    assert out["spearman_before"] == pytest.approx(-0.8) and out["spearman_after"] == pytest.approx(-0.8)
    fig = prs_by_gamma_figure(table)
    assert len(fig.data) == 3 and "Spearman before -0.80, after -0.80" in fig.layout.annotations[0].text
    fig = prs_vs_v_figure(table)
    assert list(fig.data[0].x) == [1.0, 2.0, 3.0, 4.0] and "Pearson" in fig.layout.annotations[0].text
    shadows = pd.DataFrame({"shadow": [0, 0], "setting": [0, 0], "mode": ["softmax", "released"],
                            "members": [10, 10], "non_members": [5, 5], "auc": [0.55, 0.5]})
    fig = attack_quality_figure(shadows, table)
    assert [list(t.x) for t in fig.data] == [[0.5], [0.55]]  # released, then softmax
