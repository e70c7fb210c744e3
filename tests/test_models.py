"""Models: shapes, forward/backward on CPU, parameter counts against hand-computed formulas."""

from __future__ import annotations

import pytest
import torch

from unrolling_lib.models import (
    MLP,
    MODELS,
    LinearHead,
    SmallCNN,
    build_model,
    resnet18,
    vgg19,
)
from unrolling_lib.params import module_mode, num_parameters
from unrolling_lib.validation import ParameterError


def conv(cin: int, cout: int, k: int, bias: bool) -> int:
    return cin * cout * k * k + (cout if bias else 0)


def bn(c: int) -> int:
    return 2 * c  # weight and bias; running statistics are buffers


def linear(fin: int, fout: int) -> int:
    return fin * fout + fout


def resnet18_count(num_classes: int) -> int:
    """ResNet-18 (CIFAR stem) parameter count, layer by layer."""
    total = conv(3, 64, 3, False) + bn(64)
    cin = 64
    for planes, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
        for block in range(2):
            s = stride if block == 0 else 1
            total += conv(cin, planes, 3, False) + bn(planes) + conv(planes, planes, 3, False) + bn(planes)
            if s != 1 or cin != planes:
                total += conv(cin, planes, 1, False) + bn(planes)
            cin = planes
    return total + linear(512, num_classes)


def vgg19_count(num_classes: int) -> int:
    """VGG-19 (CIFAR, BatchNorm, one linear layer): 16 biased 3×3 convolutions, written out."""
    pairs = [(3, 64), (64, 64), (64, 128), (128, 128), (128, 256)] + [(256, 256)] * 3 + [(256, 512)]
    pairs += [(512, 512)] * 7
    assert len(pairs) == 16
    return sum(conv(a, b, 3, True) + bn(b) for a, b in pairs) + linear(512, num_classes)


def test_parameter_counts_match_the_architectures() -> None:
    assert resnet18_count(10) == 11_173_962  # the well-known CIFAR ResNet-18 figure
    assert num_parameters(resnet18(10)) == 11_173_962
    assert num_parameters(resnet18(100)) == resnet18_count(100)
    assert vgg19_count(10) == 20_040_522
    assert num_parameters(vgg19(10)) == 20_040_522
    assert num_parameters(vgg19(100)) == vgg19_count(100)
    # SmallCNN: conv(1→8) + conv(8→16) + linear(16·2·2 → 10)
    assert num_parameters(SmallCNN()) == conv(1, 8, 3, True) + conv(8, 16, 3, True) + linear(64, 10) == 1898
    with_bn = conv(1, 8, 3, False) + bn(8) + conv(8, 16, 3, False) + bn(16) + linear(64, 10)
    assert num_parameters(SmallCNN(batch_norm=True)) == with_bn
    assert num_parameters(MLP(64, (32, 16), 10)) == linear(64, 32) + linear(32, 16) + linear(16, 10)
    assert num_parameters(LinearHead(384, 2)) == linear(384, 2)


def test_the_small_stand_ins_count_their_layers() -> None:
    # small_vgg: three biased 3×3 conv + BN blocks (1→8→16→32), pooled to 1×1, one linear layer
    vgg = sum(conv(a, b, 3, True) + bn(b) for a, b in ((1, 8), (8, 16), (16, 32))) + linear(32, 10)
    assert num_parameters(build_model("small_vgg", 10, in_channels=1)) == vgg == 6_330
    # small_resnet: the stem (1→4) and one BasicBlock per stage, 4 → 8 → 16 → 32 channels (1×1 shortcuts
    # where the width changes), one linear layer
    res = conv(1, 4, 3, False) + bn(4)
    cin = 4
    for planes in (4, 8, 16, 32):
        res += conv(cin, planes, 3, False) + bn(planes) + conv(planes, planes, 3, False) + bn(planes)
        if cin != planes:
            res += conv(cin, planes, 1, False) + bn(planes)
        cin = planes
    res += linear(32, 10)
    assert num_parameters(build_model("small_resnet", 10, in_channels=1)) == res == 19_830


@pytest.mark.parametrize("name", ["small_vgg", "small_resnet"])
def test_the_small_stand_ins_take_digits_and_mnist_sizes_and_have_batchnorm(name: str) -> None:
    model, again = build_model(name, 10, seed=0, in_channels=1), build_model(name, 10, seed=0, in_channels=1)
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), again.state_dict().values(),
                                                 strict=True))  # seeded: the same seed, the same weights
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())
    for side in (8, 28, 32):
        out = model(torch.randn(3, 1, side, side))
        assert out.shape == (3, 10)
        out.sum().backward()


def test_vgg_pools_to_one_pixel_as_the_released_no_op_did_on_cifar() -> None:
    # On 32×32 inputs VGG-19's features end at 1×1, where the released AvgPool2d(1) and the global pool agree.
    model = vgg19(10).eval()
    x = torch.randn(2, 3, 32, 32)
    body = model.features[:-1](x)
    assert body.shape[-2:] == (1, 1)
    assert torch.allclose(model(x), model.classifier(body.flatten(1)))


def test_resnet_refuses_mismatched_widths() -> None:
    from unrolling_lib.models import ResNet

    with pytest.raises(ParameterError, match=r"num_blocks=\(1, 1\) .*widths=\(4, 8, 16\)"):
        ResNet((1, 1), widths=(4, 8, 16))


def test_resnet_keeps_the_cifar_stem_and_released_module_names() -> None:
    model = resnet18()
    assert model.conv1.kernel_size == (3, 3) and model.conv1.stride == (1, 1)
    assert not any(isinstance(m, torch.nn.MaxPool2d) for m in model.modules())
    keys = model.state_dict().keys()
    assert {"conv1.weight", "bn1.running_mean", "layer2.0.shortcut.0.weight", "linear.weight"} <= set(keys)
    assert {"features.0.weight", "features.1.running_var", "classifier.weight"} <= set(vgg19().state_dict())


@pytest.mark.parametrize("factory", [resnet18, vgg19], ids=["resnet18", "vgg19"])
def test_cifar_models_forward_backward_on_cpu(factory) -> None:
    torch.manual_seed(0)
    model = factory(num_classes=10)
    x, y = torch.randn(2, 3, 32, 32), torch.tensor([3, 7])
    logits = model(x)
    assert logits.shape == (2, 10) and logits.dtype == torch.float32
    torch.nn.functional.cross_entropy(logits, y).backward()
    grads = [p.grad for p in model.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    model.eval()
    with torch.no_grad():
        assert model(x[:1]).shape == (1, 10)


def test_small_models_shapes_and_double_backward() -> None:
    x = torch.randn(5, 1, 8, 8, dtype=torch.float64)
    for model in (SmallCNN().double(), SmallCNN(batch_norm=True).double(), MLP(64, (16,), 10).double()):
        out = model(x)
        assert out.shape == (5, 10)
        params = [p for p in model.parameters()]
        loss = out.square().mean()
        grads = torch.autograd.grad(loss, params, create_graph=True)
        v = [torch.randn_like(p) for p in params]
        hv = torch.autograd.grad(sum((g * u).sum() for g, u in zip(grads, v, strict=True)), params)
        assert all(torch.isfinite(h).all() for h in hv)
    assert LinearHead(32, 2)(torch.randn(4, 32)).shape == (4, 2)


def test_build_model_by_name_and_seed() -> None:
    assert set(MODELS) == {"resnet18", "vgg19", "small_cnn", "small_vgg", "small_resnet", "smooth_cnn", "mlp",
                           "linear_head"}
    state = torch.random.get_rng_state()
    a = build_model("small_cnn", 10, seed=3, batch_norm=True)
    b = build_model("small_cnn", 10, seed=3, batch_norm=True)
    assert torch.equal(torch.random.get_rng_state(), state)  # global RNG untouched
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters(), strict=True))
    assert build_model("mlp", 3, in_features=4, hidden=(5,))(torch.randn(2, 4)).shape == (2, 3)
    assert build_model("resnet18", 100).linear.out_features == 100
    with pytest.raises(ParameterError, match="name='resnet50'.*'resnet18'"):
        build_model("resnet50")
    with pytest.raises(ParameterError, match=r"^name='resnet50' is not allowed; choose one of 'resnet18', 'vgg19', "
                                             r"'small_cnn', 'small_vgg', 'small_resnet', 'smooth_cnn', 'mlp', "
                                             r"'linear_head'$"):
        build_model("resnet50")
    with pytest.raises(ParameterError, match=r"^name=\['mlp'\] is not allowed; choose one of 'resnet18'"):
        build_model(["mlp"])  # unhashable: refused by name, not a TypeError
    with pytest.raises(ParameterError, match="depth="):
        build_model("small_cnn", depth=3)
    with pytest.raises(ParameterError, match="activation='swish'"):
        MLP(activation="swish")


def test_smooth_cnn_is_small_cnn_with_smooth_pieces():
    from unrolling_lib.models import SmallCNN, SmoothCNN, build_model

    smooth = build_model("smooth_cnn", 10, seed=0)
    assert isinstance(smooth, SmoothCNN)
    assert num_parameters(smooth) == num_parameters(SmallCNN()) == 1898
    x = torch.randn(3, 1, 8, 8, dtype=torch.float64, requires_grad=True)
    smooth = smooth.double()
    # smooth everywhere: second derivatives exist and pass a numerical check
    assert torch.autograd.gradgradcheck(lambda inp: smooth(inp).sum(1), (x,))


def test_module_mode_restores_every_submodule_flag():
    from unrolling_lib.models import SmallCNN

    model = SmallCNN(batch_norm=True)
    model.train()
    model.bn1.eval()  # a mixed state must come back exactly
    before = [m.training for m in model.modules()]
    with module_mode(model, train=False):
        assert not any(m.training for m in model.modules())
    assert [m.training for m in model.modules()] == before
    with pytest.raises(RuntimeError), module_mode(model, train=None):
        model.eval()
        raise RuntimeError("inside")
    assert [m.training for m in model.modules()] == before


def test_build_model_for_sizes_the_model_from_one_samples_shape() -> None:
    from unrolling_lib.models import build_model_for

    conv = build_model_for("small_vgg", (1, 28, 28), 10, seed=3)
    mlp = build_model_for("mlp", (1, 8, 8), 10, seed=3)
    assert conv.features[0].in_channels == 1 and mlp.net[1].in_features == 64
    same = build_model("small_vgg", 10, seed=3, in_channels=1)
    assert all(torch.equal(a, b) for a, b in zip(conv.state_dict().values(), same.state_dict().values(), strict=True))
