"""The unlearning error inside a real ``transformers.Trainer``: e in the log history against Eq. 9 from the same
σ samples and weights, σ against the exact Hessian, the optimiser warning, the SD loss, and bad input."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from torch import nn

transformers = pytest.importorskip("transformers")

from unrolling_lib.losses import make_loss  # noqa: E402
from unrolling_lib.params import flat_weights  # noqa: E402
from unrolling_lib.training.hf import SDLossTrainer, UnlearningErrorCallback  # noqa: E402
from unrolling_lib.unlearning_error import unlearning_error, weight_change  # noqa: E402
from unrolling_lib.validation import ParameterError  # noqa: E402


class Tiny(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.net = nn.Sequential(nn.Linear(4, 6), nn.Tanh(), nn.Linear(6, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class Rows(torch.utils.data.Dataset):
    def __init__(self, n: int = 48) -> None:
        g = torch.Generator().manual_seed(1)
        self.x, self.y = torch.randn(n, 4, generator=g), torch.randint(0, 3, (n,), generator=g)

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"x": self.x[i], "labels": self.y[i]}


def _trainer(tmp_path, optim: str = "sgd", gamma: float = 0.0, steps: int = 6, clip: float = 0.0) -> SDLossTrainer:
    args = transformers.TrainingArguments(
        output_dir=str(tmp_path), per_device_train_batch_size=8, max_steps=steps, learning_rate=0.1, optim=optim,
        lr_scheduler_type="constant", weight_decay=0.0, max_grad_norm=clip, logging_steps=1000, report_to=[],
        use_cpu=True,
        save_strategy="no", disable_tqdm=True, seed=0, dataloader_num_workers=0,
        remove_unused_columns=False, label_names=["labels"])
    return SDLossTrainer(model=Tiny(), args=args, train_dataset=Rows(), gamma=gamma)


class Snapshots(transformers.TrainerCallback):
    def __init__(self) -> None:
        self.weights: dict[int, torch.Tensor] = {}

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        self.weights[0] = flat_weights(model).detach().clone()

    def on_step_end(self, args, state, control, model=None, **kwargs):
        self.weights[state.global_step] = flat_weights(model).detach().clone()


def _exact_sigma(model: nn.Module, x: torch.Tensor, y: torch.Tensor, loss_fn) -> float:
    params = [p for p in model.parameters()]
    shapes = [p.shape for p in params]
    flat = torch.cat([p.detach().reshape(-1) for p in params]).double()

    def loss(w: torch.Tensor) -> torch.Tensor:
        pieces, i = [], 0
        for s in shapes:
            n = int(np.prod(s))
            pieces.append(w[i:i + n].reshape(s))
            i += n
        names = [n for n, _ in model.named_parameters()]
        out = torch.func.functional_call(model, dict(zip(names, pieces, strict=True)), (x.double(),))
        return loss_fn(out, y)

    h = torch.autograd.functional.hessian(loss, flat)
    return float(torch.linalg.eigvalsh(h).abs().max())


def test_e_in_the_log_history_is_eq9_from_the_same_samples_and_weights(tmp_path) -> None:
    trainer = _trainer(tmp_path, gamma=2.0)
    data = Rows()
    batch = {"x": data.x[:16], "labels": data.y[:16]}
    loss_fn = make_loss(2.0)
    callback = UnlearningErrorCallback(trainer, batch, every=2, input_key="x", loss_fn=loss_fn)
    snaps = Snapshots()
    trainer.add_callback(snaps)
    trainer.add_callback(callback)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # plain constant-lr SGD: no warning
        trainer.train()
    logged = [h for h in trainer.state.log_history if "unlearning_error" in h]
    assert [h["step"] for h in logged] == [2, 4, 6] and len(callback.records) == 3
    sigmas = []
    for h, record in zip(logged, callback.records, strict=True):
        t = h["step"]
        sigmas.append(record["sigma"])
        change = weight_change(snaps.weights[t], snaps.weights[0])
        assert h["weight_change"] == pytest.approx(change, rel=1e-6)
        assert h["unlearning_error"] == pytest.approx(unlearning_error(0.1, t, change, float(np.mean(sigmas))),
                                                      rel=1e-6)
    # the last σ against the exact Hessian of the same loss at the same weights
    model = Tiny()
    torch.nn.utils.vector_to_parameters(snaps.weights[6], model.parameters())
    assert callback.records[-1]["sigma"] == pytest.approx(_exact_sigma(model, batch["x"], batch["labels"], loss_fn),
                                                          rel=1e-3)


def test_sigma_over_the_head_is_the_head_block_of_the_exact_hessian(tmp_path) -> None:
    trainer = _trainer(tmp_path, steps=4)
    data = Rows()
    batch = {"x": data.x[:16], "labels": data.y[:16]}
    head = UnlearningErrorCallback(trainer, batch, every=4, input_key="x", sigma_params=["net.2"])
    snaps = Snapshots()
    for cb in (snaps, head):
        trainer.add_callback(cb)
    trainer.train()
    record = head.records[-1]
    model = Tiny()
    torch.nn.utils.vector_to_parameters(snaps.weights[4], model.parameters())
    full = _exact_sigma(model, batch["x"], batch["labels"], nn.functional.cross_entropy)
    for p in model.net[0].parameters():  # the exact Hessian of the head's 21 weights alone
        p.requires_grad_(False)
    sub = Tiny()
    torch.nn.utils.vector_to_parameters(snaps.weights[4], sub.parameters())
    x, y = batch["x"], batch["labels"]
    hidden = sub.net[1](sub.net[0](x)).detach().double()
    w = torch.cat([sub.net[2].weight.detach().reshape(-1), sub.net[2].bias.detach()]).double()

    def head_loss(v: torch.Tensor) -> torch.Tensor:
        return nn.functional.cross_entropy(hidden @ v[:18].reshape(3, 6).T + v[18:], y)

    exact_head = float(torch.linalg.eigvalsh(torch.autograd.functional.hessian(head_loss, w)).abs().max())
    assert record["sigma"] == pytest.approx(exact_head, rel=1e-3)
    assert record["sigma"] <= full + 1e-9  # Cauchy interlacing: a principal block's top eigenvalue
    # ‖w_t − w₀‖ over the head's weights only
    assert record["weight_change"] == pytest.approx(float((snaps.weights[4][-21:] - snaps.weights[0][-21:]).norm()),
                                                    rel=1e-6)
    assert all(p.requires_grad for p in trainer.model.parameters())  # restored after each sample


def test_sigma_params_name_whole_modules() -> None:
    from unrolling_lib.training.hf import _named

    assert _named("head.weight", ["head"]) and _named("head.bias", ["head."]) and _named("head", ["head"])
    assert not _named("headline.weight", ["head"]) and not _named("encoder.head2.bias", ["head"])
    assert _named("encoder.layer.0.attention.q.weight", ["encoder.layer.0"])


def test_another_optimiser_is_named_in_one_warning(tmp_path) -> None:
    trainer = _trainer(tmp_path, optim="adamw_torch", steps=4)
    data = Rows()
    trainer.add_callback(UnlearningErrorCallback(trainer, {"x": data.x[:8], "labels": data.y[:8]}, every=1,
                                                 input_key="x"))
    with pytest.warns(RuntimeWarning, match="AdamW") as caught:
        trainer.train()
    assert len([w for w in caught if "Eq. 9" in str(w.message)]) == 1


def test_gradient_clipping_is_named_in_one_warning(tmp_path) -> None:
    trainer = _trainer(tmp_path, steps=4, clip=1.0)  # the Trainer's default
    data = Rows()
    trainer.add_callback(UnlearningErrorCallback(trainer, {"x": data.x[:8], "labels": data.y[:8]}, every=1,
                                                 input_key="x"))
    with pytest.warns(RuntimeWarning, match=r"clipped at max_grad_norm=1") as caught:
        trainer.train()
    assert len([w for w in caught if "Eq. 9" in str(w.message)]) == 1


def test_the_sd_loss_trainer_minimises_eq10(tmp_path) -> None:
    trainer = _trainer(tmp_path, gamma=5.0, steps=1)
    data = Rows()
    inputs = {"x": data.x[:8], "labels": data.y[:8]}
    loss = trainer.compute_loss(trainer.model, inputs)
    expected = make_loss(5.0)(trainer.model(data.x[:8]), data.y[:8])
    assert loss.item() == pytest.approx(expected.item())


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"every": 0}, r"every=0 is not allowed"),
    ({"batch": {"x": torch.randn(4, 4)}}, r"batch must be a dict holding 'x' and 'labels'"),
    ({"batch": {"x": torch.randn(4, 5), "labels": torch.zeros(4, dtype=torch.long)}}, r"batch does not fit the model"),
    ({"sigma_params": ["classifier"]}, r"sigma_params=\['classifier'\] names no trainable parameter"),
    ({"sigma_params": "net.2"}, r"sigma_params must be a list"),
])
def test_bad_input_is_one_line(tmp_path, kwargs, match) -> None:
    trainer = _trainer(tmp_path)
    data = Rows()
    args = {"batch": {"x": data.x[:4], "labels": data.y[:4]}, "every": 2, **kwargs}
    with pytest.raises(ParameterError, match=match) as err:
        UnlearningErrorCallback(trainer, args.pop("batch"), input_key="x", **args)
    assert "\n" not in str(err.value)
