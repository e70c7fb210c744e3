"""Benchmarks: ``python -m unrolling_lib bench <name>`` runs ``BENCHES[name]`` and prints a table.

``hessian``: σ's eigenvalue (:func:`unrolling_lib.curvature.top_eigenvalue`) against PyHessian's
``hessian(model, criterion, data=(x, y), cuda=False).eigenvalues()`` (power iteration, 100 iterations,
tol 1e-3 on the relative change, as the paper's released code used it) on the same model and batch:

- a small CNN (BatchNorm) on a batch of 128 digits, at initialisation and after 200 SGD steps;
- the CIFAR ResNet-18 on a synthetic CIFAR-shaped batch of 16, at initialisation and after 20 SGD steps.

For each it reports wall time, Hessian-vector products and the relative error against a converged
reference (ARPACK's Lanczos through ``scipy.sparse.linalg.eigsh``, tol 1e-6, on the same products), from a
cold start; then, after one more SGD step, PyHessian again (it cannot warm-start) and ours from the
previous eigenvector (not for ResNet-18 at initialisation, where that step also moves BatchNorm's running
statistics off their defaults). PyHessian is an optional extra (``pip install pyhessian==0.1``).

``monitor``: the training machinery's costs (see :func:`bench_monitor`): training alone, with the
unlearning-error monitor sampling σ every 50 and every 200 steps (ratios, Hessian-vector products per
sample, σ's largest error against ARPACK at the same weights), and M with M′ in lockstep; then the cost
model that bounds the monitor's ratio from below.
"""

from __future__ import annotations

import copy
import statistics
import sys
import time
import warnings
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from ..curvature import EigenResult, HVPOperator, top_eigenvalue
from ..params import eval_mode, module_mode, trainable_parameters
from ..validation import ParameterError

__all__ = ["BENCHES", "run_bench"]


@dataclass
class _Row:
    model: str
    state: str
    method: str
    seconds: float
    hvps: float
    rel_error: float
    ratio: float
    hvp_ratio: float


def _pyhessian() -> Any:
    try:
        from pyhessian import hessian
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ParameterError("the hessian benchmark needs PyHessian: pip install pyhessian==0.1 "
                             "(or the 'bench' extra of unrolling-lib)") from err
    return hessian, sys.modules["pyhessian.hessian"]


def _reference(model: nn.Module, loss_fn: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """The eigenvalue of largest magnitude by ARPACK (independent of our Lanczos), tol 1e-6."""
    from scipy.sparse.linalg import eigsh

    with eval_mode(model):
        op = HVPOperator(model, loss_fn, x, y)
        v0 = np.random.default_rng(12345).standard_normal(op.numel)
        values = eigsh(op.to_scipy(), k=1, which="LM", tol=1e-6, v0=v0, ncv=16, return_eigenvectors=False)
    return float(values[0])


def _time_pyhessian(model: nn.Module, loss_fn: nn.Module, x: torch.Tensor, y: torch.Tensor,
                    seed: int) -> tuple[float, int, float]:
    """PyHessian's default call: (seconds, products, eigenvalue). Leaves the model as it found it."""
    hessian, module = _pyhessian()
    count = [0]
    original = module.hessian_vector_product

    def counting(*args: Any, **kwargs: Any) -> Any:
        count[0] += 1
        return original(*args, **kwargs)

    module.hessian_vector_product = counting
    try:
        with module_mode(model, train=None), torch.random.fork_rng(devices=[]), \
                warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.manual_seed(seed)
            start = time.perf_counter()
            values, _ = hessian(model, loss_fn, data=(x, y), cuda=False).eigenvalues()
            seconds = time.perf_counter() - start
    finally:
        module.hessian_vector_product = original
        model.zero_grad(set_to_none=True)  # PyHessian leaves graph-carrying .grad fields behind
    return seconds, count[0], float(values[0])


def _time_ours(model: nn.Module, loss_fn: nn.Module, x: torch.Tensor, y: torch.Tensor, seed: int,
               init: EigenResult | None = None) -> tuple[float, EigenResult]:
    start = time.perf_counter()
    result = top_eigenvalue(model, loss_fn, x, y, init=init, seed=seed)
    return time.perf_counter() - start, result


def _sgd_step(model: nn.Module, loss_fn: nn.Module, x: torch.Tensor, y: torch.Tensor, lr: float) -> None:
    """One plain SGD step in train mode (the model's modes restored after)."""
    params = trainable_parameters(model)
    with module_mode(model, train=True):
        grads = torch.autograd.grad(loss_fn(model(x), y), params)
    with torch.no_grad():
        torch._foreach_add_(params, grads, alpha=-lr)


def _compare(model: nn.Module, name: str, state: str, batch: tuple[torch.Tensor, torch.Tensor],
             step_batch: tuple[torch.Tensor, torch.Tensor] | None, lr: float, repeats: int) -> Iterator[_Row]:
    """Cold comparison at the current weights, then (with ``step_batch``) one SGD step and the warm one.

    The methods run interleaved, ``repeats`` times (PyHessian and our cold start with seeds 0, 1, …), and
    the fastest time of each is kept: on a shared machine the minimum is the least disturbed figure.
    """
    loss_fn = nn.CrossEntropyLoss()
    x, y = batch
    previous: EigenResult | None = None
    for phase in ("cold", "after 1 SGD step"):
        if phase != "cold":
            if step_batch is None:
                return
            _sgd_step(model, loss_fn, *step_batch, lr=lr)
        ref = _reference(model, loss_fn, x, y)
        ph, ours, warm = [], [], []
        for seed in range(repeats):
            ph.append(_time_pyhessian(model, loss_fn, x, y, seed))
            ours.append(_time_ours(model, loss_fn, x, y, seed))
            if previous is not None:
                warm.append(_time_ours(model, loss_fn, x, y, 0, init=previous))
        label = f"{state}, {phase}"
        ph_time, ph_hvps = min(t for t, _, _ in ph), statistics.median(n for _, n, _ in ph)
        yield _Row(name, label, "PyHessian power (default)", ph_time, ph_hvps,
                   max(abs(v - ref) / abs(ref) for *_, v in ph), 1.0, 1.0)
        for method, runs in (("ours, cold start", ours), ("ours, warm start", warm)):
            if runs:
                t, hvps = min(t for t, _ in runs), statistics.median(r.hvp_count for _, r in runs)
                yield _Row(name, label, method, t, hvps, max(abs(r.value - ref) / abs(ref) for _, r in runs),
                           t / ph_time, hvps / ph_hvps)
        previous = ours[0][1]


def _train(model: nn.Module, x: torch.Tensor, y: torch.Tensor, steps: int, lr: float, batch: int) -> None:
    gen = torch.Generator().manual_seed(1)
    loss_fn = nn.CrossEntropyLoss()
    for _ in range(steps):
        idx = torch.randint(0, len(y), (batch,), generator=gen)
        _sgd_step(model, loss_fn, x[idx], y[idx], lr)


def _hessian_rows() -> Iterator[_Row]:
    from ..data import load_digits_dataset, synthetic_cifar
    from ..models import SmallCNN, resnet18

    digits = load_digits_dataset()
    batch, step_batch = (digits.x[:128], digits.y[:128]), (digits.x[128:160], digits.y[128:160])
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        cnn = SmallCNN(batch_norm=True)
        resnet = resnet18()
    for state, steps in (("init", 0), ("200 SGD steps", 200)):
        model = copy.deepcopy(cnn)
        _train(model, digits.x, digits.y, steps, lr=0.05, batch=32)
        yield from _compare(model, "small CNN, digits (128)", state, batch, step_batch, lr=0.05, repeats=5)
    cifar = synthetic_cifar(64, seed=0)
    batch, step_batch = (cifar.x[:16], cifar.y[:16]), (cifar.x[16:32], cifar.y[16:32])
    # At initialisation only the cold start: the first SGD step also moves BatchNorm's running statistics
    # away from their defaults, which changes the eval-mode Hessian far more than a later step does.
    for state, steps, warm in (("init", 0, None), ("20 SGD steps", 20, step_batch)):
        model = copy.deepcopy(resnet)
        _train(model, cifar.x, cifar.y, steps, lr=0.05, batch=16)
        yield from _compare(model, "ResNet-18, synthetic CIFAR (16)", state, batch, warm, lr=0.05, repeats=1)


def _print_table(rows: Iterable[_Row]) -> None:
    header = (f"{'model':<32} {'state':<32} {'method':<26} {'time (s)':>9} {'HVPs':>5} {'rel. err':>8} "
              f"{'t/t_PH':>6} {'HVP/PH':>6}")
    print(header)
    print("-" * len(header), flush=True)
    for r in rows:
        print(f"{r.model:<32} {r.state:<32} {r.method:<26} {r.seconds:>9.3f} {r.hvps:>5.0f} "
              f"{r.rel_error:>8.1e} {r.ratio:>6.2f} {r.hvp_ratio:>6.2f}", flush=True)
    print("time: the fastest of the interleaved repeats; HVPs: median; rel. err: the largest over repeats, against "
          "ARPACK (eigsh, tol 1e-6);\nt/t_PH, HVP/PH: against PyHessian on the same weights. Targets: cold ≤ 0.33 "
          "and warm ≤ 0.20 of PyHessian's time, at rel. err ≤ 1e-3.")


def bench_hessian() -> None:
    """Print the σ benchmark table (a few minutes on two CPU cores)."""
    _pyhessian()
    start = time.perf_counter()
    _print_table(_hessian_rows())
    print(f"total {time.perf_counter() - start:.0f} s, torch {torch.__version__}, {torch.get_num_threads()} threads")


def _step_costs(model: nn.Module, hess: tuple[torch.Tensor, torch.Tensor], repeats: int = 5,
                products: int = 5) -> tuple[float, float]:
    """Seconds to build the Hessian operator on ``hess`` and per Hessian-vector product (``products`` on each
    fresh operator, as at a σ sample); the fastest of ``repeats``."""
    builds, each = [], []
    v = torch.ones(sum(p.numel() for p in trainable_parameters(model)))
    with eval_mode(model):
        for _ in range(repeats):
            start = time.perf_counter()
            op = HVPOperator(model, nn.functional.cross_entropy, *hess)
            built = time.perf_counter()
            for _ in range(products):
                op.matvec(v)
            builds.append(built - start)
            each.append((time.perf_counter() - built) / products)
    return min(builds), min(each)


class _Reference:
    """A callback beside the monitor: σ by ARPACK (tol 1e-6) at the weights of every σ sample."""

    def __init__(self, every: int, hess: tuple[torch.Tensor, torch.Tensor]):
        self.every, self.hess, self.sigmas = every, hess, {}

    def on_start(self, model: nn.Module) -> None:
        self.sigmas[0] = abs(_reference(model, nn.CrossEntropyLoss(), *self.hess))

    def on_step(self, state: Any) -> None:
        self.sigmas[state.t] = abs(_reference(state.model, nn.CrossEntropyLoss(), *self.hess))


def bench_monitor(repeats: int = 7, steps: int = 400) -> None:
    """The training machinery's costs at the quick profile (digits, small CNN, one thread).

    The fine-tuning phase of the §8.3 experiment (``steps`` plain SGD steps in batches of 32 at lr 0.01, from
    a model pre-trained for ``steps // 2`` steps in batches of 128 at lr 0.1) with the unlearning-error
    monitor sampling σ on a fixed batch of 32 every 50 steps (the quick profile; target: at most 10 % more
    than training alone), every 200 (the paper's cadence) and every 50 at ``tol=1e-2``; and M with M′ in
    lockstep against the two trainings run one after the other. Each monitored run is timed between two
    runs of training alone and divided by their mean (lockstep between two runs of the separate trainings):
    on a shared machine whose speed drifts by tens of per cent from one second to the next, neighbours
    stay comparable where separate medians do not. Medians over ``repeats`` rounds. The "in-run" ratio
    divides a monitored run's time by its time outside the σ samples (the monitor's own clock). For each
    monitor also the Hessian-vector products per σ sample and the largest relative error of its σ against
    ARPACK at the same weights (an untimed run with the reference beside the monitor). Last, the cost model
    that bounds the ratio from below.
    """
    from ..data import BatchOrder, load_digits_dataset
    from ..models import build_model
    from ..training import cpu_threads, train, train_lockstep
    from ..unlearning_error import UnlearningErrorMonitor

    data = load_digits_dataset()
    hess = (data.x[:32], data.y[:32])
    order = BatchOrder(len(data), 32, steps=steps, seed=1)
    monitors = {"every 50": {"every": 50}, "every 200": {"every": 200},
                "every 50, tol 1e-2": {"every": 50, "tol": 1e-2}}
    ratios: dict[str, list[float]] = {k: [] for k in (*monitors, "lockstep")}
    in_run: dict[str, list[float]] = {k: [] for k in monitors}
    plain, build_steps, product_steps = [], [], []

    def timed(run: Any) -> float:
        start = time.perf_counter()
        run()
        return time.perf_counter() - start

    def alone() -> None:
        train(copy.deepcopy(w0), data, order, lr=0.01, progress=False)

    def separate() -> None:  # M, then M′ without the first batch
        alone()
        train(copy.deepcopy(w0), data, order.without(0), lr=0.01, progress=False)

    with cpu_threads(1):
        w0 = build_model("small_cnn", 10, seed=0)
        train(w0, data, BatchOrder(len(data), 128, steps=steps // 2, seed=0), lr=0.1, progress=False)
        top_eigenvalue(w0, nn.functional.cross_entropy, *hess)  # first double backward loads extra modules
        for _ in range(repeats):
            before = timed(alone)
            for run, kwargs in monitors.items():  # each monitored run between two runs of training alone
                monitor = UnlearningErrorMonitor(0.01, *hess, **kwargs)
                t = timed(lambda m=monitor: train(copy.deepcopy(w0), data, order, lr=0.01, progress=False,
                                                  callbacks=[m]))
                after = timed(alone)
                ratios[run].append(2 * t / (before + after))
                in_run[run].append(t / (t - float(monitor.frame()["seconds"].sum())))
                plain.append(after)
                before = after
            first = timed(separate)
            lockstep = timed(lambda: train_lockstep(copy.deepcopy(w0), data, order, unlearn_step=0, lr=0.01,
                                                    progress=False))
            ratios["lockstep"].append(2 * lockstep / (first + timed(separate)))
            base = timed(alone)
            build, product = _step_costs(w0, hess)
            build_steps.append(build / (base / steps))
            product_steps.append(product / (base / steps))
        frames, errors = {}, {}
        for run, kwargs in monitors.items():  # untimed: the same run with the reference beside the monitor
            monitor, reference = UnlearningErrorMonitor(0.01, *hess, **kwargs), _Reference(kwargs["every"], hess)
            train(copy.deepcopy(w0), data, order, lr=0.01, progress=False, callbacks=[monitor, reference])
            frames[run] = frame = monitor.frame()
            exact = np.array([reference.sigmas[t] for t in frame["t"]])
            errors[run] = float(np.max(np.abs(frame["sigma"].to_numpy() - exact) / exact))
    med = {k: statistics.median(v) for k, v in ratios.items()}
    print(f"{f'{steps} steps, quick profile':<38} {'ratio':>6} {'in-run':>6} {'samples':>7} {'HVPs at w₀':>10} "
          f"{'HVPs/sample after':>17} {'max σ err':>9}")
    print("-" * 99)
    print(f"{'training alone':<38} {1.0:>6.2f}   (median {statistics.median(plain):.3f} s)")
    for run in monitors:
        f = frames[run]
        print(f"{'with the monitor, σ ' + run:<38} {med[run]:>6.2f} {statistics.median(in_run[run]):>6.2f} "
              f"{len(f):>7} {f['hvp_count'].iloc[0]:>10} {f['hvp_count'].iloc[1:].mean():>17.1f} "
              f"{errors[run]:>9.1e}")
    print(f"{'M and M′ in lockstep':<38} {med['lockstep']:>6.2f}   (against the two trainings one after the other)")
    print(f"ratio: against training alone run just before and after (target ≤ 1.10 at σ every 50); in-run: time / "
          f"time outside the σ samples;\nmax σ err: the largest relative error of σ against ARPACK (eigsh, tol 1e-6) "
          f"at the same weights. Medians of {repeats} rounds, torch {torch.__version__}, 1 thread.")
    b, k1 = statistics.median(build_steps), statistics.median(product_steps)
    print(f"cost model: building the Hessian operator costs {b:.2f} training steps, one Hessian-vector product "
          f"{k1:.2f}; with k products at every sample the monitor costs at least (bookkeeping left out)")
    for every in (50, 200):
        samples = steps // every + 1  # w₀ included
        floor = ", ".join(f"k = {k}: ×{1 + samples * (b + k * k1) / steps:.3f}" for k in range(1, 6))
        print(f"  σ every {every:>3} ({samples} samples): {floor}")


def bench_trainer(steps: int = 24, every: int = 6) -> None:
    """The Trainer callback's cost beside a training step (:class:`~unrolling_lib.training.hf.
    UnlearningErrorCallback`): the packaged MiniLM with a linear head fine-tuned by a real ``transformers.Trainer``
    on lexicon entries (:func:`~unrolling_lib.experiments.text.finetune_encoder`), σ over all 22.7 M parameters
    and over the head's 770, at two sequence lengths and two batch sizes for σ. Needs the ``text`` extra."""
    from ..experiments.text import ENCODER_DEFAULTS, finetune_encoder

    base = {**ENCODER_DEFAULTS["quick"], "gammas": [0.0], "steps": steps, "sigma_every": every,
            "train_subset": 256, "test_subset": 64}
    header = (f"{'tokens':>6} {'σ batch':>7} {'σ over':>6} {'step (s)':>8} {'first σ (s)':>11} {'HVPs':>4} "
              f"{'later σ (s)':>11} {'HVPs':>4} {'σ / step':>8} {'×, every 50':>11}")
    print(header)
    print("-" * len(header), flush=True)
    for tokens, batch in ((8, 8), (32, 8), (32, 32)):
        frame = finetune_encoder(**{**base, "max_length": tokens, "hessian_batch_size": batch}, progress=False,
                                 device="cpu")
        for over, part in frame.groupby("sigma_over", sort=False):
            step = float(part["step_seconds"].iloc[0])
            first, later = part.iloc[0], part.iloc[1:]
            warm = float(later["sigma_seconds"].median())
            print(f"{tokens:>6} {batch:>7} {over:>6} {step:>8.3f} {first['sigma_seconds']:>11.2f} "
                  f"{first['hvp_count']:>4.0f} {warm:>11.2f} {later['hvp_count'].median():>4.0f} "
                  f"{warm / step:>8.1f} {1 + warm / (50 * step):>11.2f}", flush=True)
    print(f"step: the median seconds of one Trainer step (batch 8, σ samples excluded); first σ: the cold sample at "
          f"step {every}; later σ: the median of the warm-started samples after it; σ / step: a later sample in "
          f"training steps;\n×, every 50: the run's time with one such sample every 50 steps against none. "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads.")


BENCHES: dict[str, Callable[[], None]] = {"hessian": bench_hessian, "monitor": bench_monitor,
                                          "trainer": bench_trainer}


def run_bench(name: str) -> None:
    """Run the benchmark called ``name`` (one of :data:`BENCHES`)."""
    if name not in BENCHES:
        raise ParameterError(f"name={name!r} is not a benchmark; choose one of {', '.join(map(repr, BENCHES))}")
    BENCHES[name]()


if __name__ == "__main__":  # pragma: no cover
    run_bench(sys.argv[1] if len(sys.argv) > 1 else "hessian")
