"""The paper's w: trainable parameters, flat vectors and back, weights carried over to a copy."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from unrolling_lib.params import (
    eval_mode,
    flat_weights,
    flatten,
    named_trainable,
    trainable_parameters,
    unflatten,
    weight_distance,
    with_weights,
)
from unrolling_lib.validation import ParameterError


def net() -> nn.Module:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Tanh(), nn.Linear(4, 2))
    model[0].bias.requires_grad_(False)  # a frozen parameter is not part of w
    return model


def test_trainable_parameters_leave_out_frozen_ones_and_buffers():
    model = net()
    names = [n for n, _ in named_trainable(model)]
    assert names == ["0.weight", "1.weight", "1.bias", "3.weight", "3.bias"]
    assert sum(p.numel() for p in trainable_parameters(model)) == 12 + 4 + 4 + 8 + 2
    frozen = nn.Linear(2, 2).requires_grad_(False)
    with pytest.raises(ParameterError, match="^model has no trainable parameters"):
        trainable_parameters(frozen)
    with pytest.raises(ParameterError, match="^model must be a torch.nn.Module; got int"):
        trainable_parameters(3)


def test_flatten_and_unflatten_are_inverse_views():
    params = trainable_parameters(net())
    flat = flatten(params)
    assert torch.equal(flat, nn.utils.parameters_to_vector(params))  # torch's own flattening, independently
    pieces = unflatten(flat, params)
    assert all(torch.equal(a, b) for a, b in zip(pieces, params, strict=True))
    flat[0] = 123.0
    assert pieces[0].reshape(-1)[0] == 123.0  # views of the flat vector, no copies
    with pytest.raises(ParameterError, match="^update must be flat with 30 entries; got shape \\(31,\\)"):
        unflatten(torch.zeros(31), params, name="update")


def test_with_weights_carries_every_form_of_weights_and_keeps_buffers():
    model, other = net(), net()
    with torch.no_grad():
        for p in trainable_parameters(other):
            p.add_(1.0)
    other[1].running_mean.fill_(7.0)
    for given in (other, other.state_dict(), flat_weights(other)):
        copy = with_weights(model, given)
        assert torch.equal(flat_weights(copy), flat_weights(other))
        assert torch.equal(copy[1].running_mean, model[1].running_mean)  # buffers are the model's own
        assert torch.equal(copy[0].bias, model[0].bias)  # a frozen parameter is not among the weights
    # every trainable entry moved by 1 (in float32: w + 1 − w is 1 to a few ulps)
    assert weight_distance(model, other) == pytest.approx(30 ** 0.5, rel=1e-6)
    with pytest.raises(ParameterError, match="^w0 must hold 30 trainable weights; got 29"):
        with_weights(model, torch.zeros(29), name="w0")


def test_eval_mode_restores_each_flag_even_on_error():
    model = net()
    model[1].eval()  # a mixed state: only the BatchNorm in eval mode
    with pytest.raises(RuntimeError), eval_mode(model):
        assert not any(m.training for m in model.modules())
        raise RuntimeError
    assert [m.training for m in model.modules()] == [True, True, False, True, True]
