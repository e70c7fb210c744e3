"""The networks of the paper, and small ones for the quick profile and the theory chapters.

- :func:`resnet18` and :func:`vgg19`: the CIFAR variants the paper trains (§6.1, §7): a 3×3 stride-1 stem
  and no max-pool in ResNet-18, BatchNorm after every convolution, one linear classifier. Module names
  follow the paper's released code, so its checkpoints load with ``load_state_dict``.
- :class:`SmallCNN`: a ~2k-parameter network for 8×8 digits; Hessian-vector products through it are cheap.
- :func:`small_vgg` and :func:`small_resnet`: the quick profile's stand-ins for VGG-19 and ResNet-18, the
  same two families with BatchNorm, a few thousand weights (digits and MNIST-5k).
- :class:`MLP`: a tiny fully connected network with a smooth activation by default (second-order theory).
- :class:`LinearHead`: a linear classifier on frozen features (e.g. a text encoder's).

Everything is plain PyTorch with no in-place activations, so double backward (Hessian-vector products)
works through every model. :func:`build_model` picks one by name.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .validation import ParameterError, check_choice

__all__ = [
    "MODELS",
    "BasicBlock",
    "LinearHead",
    "MLP",
    "POOLINGS",
    "ResNet",
    "SMALL_VGG_CFG",
    "SmallCNN",
    "SmoothCNN",
    "TextClassifier",
    "VGG",
    "VGG19_CFG",
    "build_model",
    "build_model_for",
    "pool_tokens",
    "resnet18",
    "small_resnet",
    "small_vgg",
    "vgg19",
]


# ---------------------------------------------------------------------------------------------------
# ResNet-18 for CIFAR
# ---------------------------------------------------------------------------------------------------


class BasicBlock(nn.Module):
    """Two 3×3 conv + BatchNorm layers with a residual connection (1×1 conv + BN when the shape changes)."""

    def __init__(self, in_planes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, kernel_size=3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, kernel_size=3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut = nn.Sequential()
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_planes, planes, kernel_size=1, stride=stride, bias=False),
                nn.BatchNorm2d(planes),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class ResNet(nn.Module):
    """CIFAR ResNet: 3×3 stride-1 stem (no max-pool), one stage of :class:`BasicBlock` per entry of
    ``widths`` (ResNet-18: 64, 128, 256, 512 channels; stride 1, then 2), global average pooling and one
    linear layer. Stage k is the attribute ``layer<k>``, as in the paper's released code."""

    def __init__(self, num_blocks: Sequence[int], num_classes: int = 10, in_channels: int = 3, *,
                 widths: Sequence[int] = (64, 128, 256, 512)) -> None:
        super().__init__()
        if len(num_blocks) != len(widths) or not widths:
            raise ParameterError(f"num_blocks={tuple(num_blocks)} is not allowed; give one block count per "
                                 f"width of widths={tuple(widths)}")
        self.conv1 = nn.Conv2d(in_channels, widths[0], kernel_size=3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        in_planes = widths[0]
        self.stages = len(widths)
        for stage, (planes, blocks) in enumerate(zip(widths, num_blocks, strict=True), start=1):
            strides = [1 if stage == 1 else 2] + [1] * (blocks - 1)
            layers = []
            for s in strides:
                layers.append(BasicBlock(in_planes, int(planes), s))
                in_planes = int(planes)
            setattr(self, f"layer{stage}", nn.Sequential(*layers))
        self.linear = nn.Linear(in_planes, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        for stage in range(1, self.stages + 1):
            out = getattr(self, f"layer{stage}")(out)
        out = F.adaptive_avg_pool2d(out, 1).flatten(1)  # = avg_pool2d(out, 4) on 32×32 inputs
        return self.linear(out)


def resnet18(num_classes: int = 10, in_channels: int = 3) -> ResNet:
    """The CIFAR ResNet-18 of the paper (§6.1): 11,173,962 parameters for 10 classes."""
    return ResNet((2, 2, 2, 2), num_classes=num_classes, in_channels=in_channels)


# ---------------------------------------------------------------------------------------------------
# VGG-19 for CIFAR
# ---------------------------------------------------------------------------------------------------

# Output channels of each 3×3 convolution; "M" is a 2×2 max-pool.
VGG19_CFG: tuple[int | str, ...] = (
    64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512, "M",
)


class VGG(nn.Module):
    """CIFAR VGG: 3×3 conv (with bias) + BatchNorm + ReLU blocks and max-pools as in ``cfg``, then global
    average pooling (a no-op on 32×32 inputs to VGG-19) and a single ``Linear(channels, num_classes)``."""

    def __init__(self, cfg: Sequence[int | str] = VGG19_CFG, num_classes: int = 10, in_channels: int = 3) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        channels = in_channels
        for item in cfg:
            if item == "M":
                layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
            else:
                layers += [nn.Conv2d(channels, int(item), kernel_size=3, padding=1),
                           nn.BatchNorm2d(int(item)), nn.ReLU()]
                channels = int(item)
        # The released code's AvgPool2d(1) is a no-op on 32×32 inputs (1×1 after five pools); pooling to
        # 1×1 gives the same there and lets smaller VGGs take other sizes. It has no weights either way.
        layers.append(nn.AdaptiveAvgPool2d(1))
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x).flatten(1))


def vgg19(num_classes: int = 10, in_channels: int = 3) -> VGG:
    """The CIFAR VGG-19 of the paper (§6.1): 20,040,522 parameters for 10 classes (32×32 inputs)."""
    return VGG(VGG19_CFG, num_classes=num_classes, in_channels=in_channels)


# ---------------------------------------------------------------------------------------------------
# Small models: quick profile and theory chapters
# ---------------------------------------------------------------------------------------------------


class SmallCNN(nn.Module):
    """A tiny CNN for 8×8 digits: conv(3×3, ``width``) → ReLU → max-pool 2 → conv(3×3, 2·``width``) →
    ReLU → average pool to 2×2 → linear. 1,898 parameters at the defaults (10 classes, 1 channel).

    ``batch_norm=True`` adds BatchNorm after each convolution (the convolutions then have no bias), to
    mirror the large models' train/eval behaviour at small cost. Any input size ≥ 2×2 works.
    """

    def __init__(self, num_classes: int = 10, in_channels: int = 1, *, width: int = 8,
                 batch_norm: bool = False) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, width, kernel_size=3, padding=1, bias=not batch_norm)
        self.bn1 = nn.BatchNorm2d(width) if batch_norm else nn.Identity()
        self.conv2 = nn.Conv2d(width, 2 * width, kernel_size=3, padding=1, bias=not batch_norm)
        self.bn2 = nn.BatchNorm2d(2 * width) if batch_norm else nn.Identity()
        self.linear = nn.Linear(2 * width * 4, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.max_pool2d(F.relu(self.bn1(self.conv1(x))), 2)
        out = F.adaptive_avg_pool2d(F.relu(self.bn2(self.conv2(out))), 2)
        return self.linear(out.flatten(1))


class SmoothCNN(nn.Module):
    """The architecture of :class:`SmallCNN` with smooth pieces: tanh instead of ReLU and
    average instead of max pooling (1,898 parameters at width 8, as SmallCNN).

    §5 expands the loss in a Taylor series around w₀, which needs a smooth loss. SmallCNN's ReLUs and
    max-pools make it piecewise smooth: on digits some pre-activations sit within 1e-4 of a kink, so even tiny
    SGD steps cross one and the expansion's error stops shrinking like η² and η³. This model keeps the
    convolutional structure and makes the expansion applicable.
    """

    def __init__(self, num_classes: int = 10, in_channels: int = 1, *, width: int = 8) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, width, kernel_size=3, padding=1)
        self.conv2 = nn.Conv2d(width, 2 * width, kernel_size=3, padding=1)
        self.linear = nn.Linear(2 * width * 4, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.avg_pool2d(torch.tanh(self.conv1(x)), 2)
        out = F.adaptive_avg_pool2d(torch.tanh(self.conv2(out)), 2)
        return self.linear(out.flatten(1))


# The quick profile's stand-ins for the paper's two architectures (§6.1): the same families, BatchNorm
# included (so σ is taken in eval mode, as for the large ones), a few thousand weights.
SMALL_VGG_CFG: tuple[int | str, ...] = (8, "M", 16, "M", 32, "M")


def small_vgg(num_classes: int = 10, in_channels: int = 1) -> VGG:
    """A VGG-style stand-in for VGG-19: three conv + BatchNorm + ReLU blocks (8, 16, 32 channels), each
    followed by a 2×2 max-pool, global average pooling, one linear layer. 6,330 parameters for 10 classes
    and one input channel."""
    return VGG(SMALL_VGG_CFG, num_classes=num_classes, in_channels=in_channels)


def small_resnet(num_classes: int = 10, in_channels: int = 1) -> ResNet:
    """A residual stand-in for ResNet-18: the CIFAR ResNet's stem and four stages of one :class:`BasicBlock`
    each (4, 8, 16, 32 channels, stride 1 then 2), global average pooling, one linear layer. 19,830
    parameters for 10 classes and one input channel. (Two stages of 8 and 16 channels see too little of a
    28×28 digit before the pooling: 30 % test accuracy on MNIST-5k after 200 steps, against 90 % here.)"""
    return ResNet((1, 1, 1, 1), num_classes=num_classes, in_channels=in_channels, widths=(4, 8, 16, 32))


ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "tanh": nn.Tanh, "relu": nn.ReLU, "gelu": nn.GELU, "softplus": nn.Softplus, "sigmoid": nn.Sigmoid,
}


class MLP(nn.Module):
    """A fully connected network: flatten → [Linear → activation] for each width in ``hidden`` → Linear.

    ``hidden=()`` gives a linear model. The default activation is ``tanh``: smooth, so the Hessian is
    continuous, as the Taylor expansions of §5 assume.
    """

    def __init__(self, in_features: int = 64, hidden: Sequence[int] = (32,), num_classes: int = 10, *,
                 activation: str = "tanh", bias: bool = True) -> None:
        super().__init__()
        check_choice("activation", activation, tuple(ACTIVATIONS))
        layers: list[nn.Module] = [nn.Flatten()]
        width = in_features
        for h in hidden:
            layers += [nn.Linear(width, int(h), bias=bias), ACTIVATIONS[activation]()]
            width = int(h)
        layers.append(nn.Linear(width, num_classes, bias=bias))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class LinearHead(nn.Module):
    """A linear classifier on fixed features (N, ``in_features``), e.g. a frozen text encoder's output."""

    def __init__(self, in_features: int, num_classes: int = 2) -> None:
        super().__init__()
        self.linear = nn.Linear(in_features, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x.flatten(1))


POOLINGS = ("mean", "first")


def pool_tokens(hidden: torch.Tensor, mask: torch.Tensor, pooling: str = "mean") -> torch.Tensor:
    """One vector per sequence from a text encoder's hidden states (B, L, H) and attention mask (B, L):
    ``"mean"`` over the non-padding tokens, or ``"first"``, the [CLS] token's state."""
    check_choice("pooling", pooling, POOLINGS)
    if pooling == "first":
        return hidden[:, 0]
    weights = mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * weights).sum(1) / weights.sum(1).clamp_min(1.0)


class TextClassifier(nn.Module):
    """A pretrained text encoder (any module returning ``last_hidden_state``, e.g. a ``transformers.AutoModel``)
    with a linear head on its pooled output: the model that fine-tuning the whole encoder trains. With the
    encoder frozen, it is :class:`LinearHead` on the encoder's features, the released text runs' model."""

    def __init__(self, encoder: nn.Module, hidden_size: int, num_classes: int = 2, *, pooling: str = "mean") -> None:
        super().__init__()
        self.pooling = check_choice("pooling", pooling, POOLINGS)
        self.encoder = encoder
        self.head = nn.Linear(int(hidden_size), num_classes)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        mask = attention_mask if attention_mask is not None else torch.ones_like(input_ids)
        hidden = self.encoder(input_ids=input_ids, attention_mask=mask).last_hidden_state
        return self.head(pool_tokens(hidden, mask, self.pooling))


# ---------------------------------------------------------------------------------------------------
# By name
# ---------------------------------------------------------------------------------------------------

MODELS: dict[str, Callable[..., nn.Module]] = {
    "resnet18": resnet18,
    "vgg19": vgg19,
    "small_cnn": SmallCNN,
    "small_vgg": small_vgg,
    "small_resnet": small_resnet,
    "smooth_cnn": SmoothCNN,
    "mlp": MLP,
    "linear_head": LinearHead,
}


def build_model(name: str, num_classes: int = 10, *, seed: int | None = None, **kwargs: Any) -> nn.Module:
    """The model called ``name`` (one of :data:`MODELS`) with ``num_classes`` outputs.

    ``kwargs`` go to the constructor (``in_channels`` for the CNNs, ``in_features``/``hidden``/``activation``
    for ``mlp``, ``in_features`` for ``linear_head``, ``batch_norm``/``width`` for ``small_cnn``). With
    ``seed``, the initial weights depend on it alone; the global random state is left untouched.
    """
    factory = MODELS[check_choice("name", name, MODELS)]
    accepted = set(inspect.signature(factory).parameters) - {"num_classes"}
    unknown = sorted(set(kwargs) - accepted)
    if unknown:
        raise ParameterError(f"{unknown[0]}= is not a parameter of model {name!r}; known: "
                             f"{', '.join(sorted(accepted))}")
    if seed is None:
        return factory(num_classes=num_classes, **kwargs)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return factory(num_classes=num_classes, **kwargs)


def build_model_for(name: str, sample_shape: Sequence[int], num_classes: int, *, seed: int | None = None) -> nn.Module:
    """:func:`build_model` sized for inputs of ``sample_shape`` (one sample, e.g. ``(1, 28, 28)``): the flattened
    size for ``mlp`` and ``linear_head``, the channel count for the convolutional models."""
    if name in ("mlp", "linear_head"):
        return build_model(name, num_classes, seed=seed, in_features=int(math.prod(sample_shape)))
    return build_model(name, num_classes, seed=seed, in_channels=int(sample_shape[0]))
