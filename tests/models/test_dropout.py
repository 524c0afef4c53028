"""Dropout with a uniform-draw mask behaves as ``torch.nn.Dropout``."""

from __future__ import annotations

import pytest
import torch

from thitogene_kedro.models.dropout import Dropout, dropout


def test_keeps_one_minus_p_of_the_elements_scaled_by_its_inverse():
    torch.manual_seed(0)
    x = torch.rand(1_000_000) + 0.5  # no zeros, so a zero output means dropped
    out = dropout(x, 0.2, training=True)
    kept = out != 0
    # 1e6 Bernoulli(0.8) draws: the kept fraction is within 5 standard deviations (0.002) of 0.8
    assert abs(kept.float().mean().item() - 0.8) < 0.002
    torch.testing.assert_close(out[kept], x[kept] / 0.8)


def test_gradient_flows_through_the_same_mask():
    torch.manual_seed(1)
    x = (torch.rand(4, 300) + 0.5).requires_grad_()
    out = dropout(x, 0.3, training=True)
    weights = torch.randn_like(out)
    (out * weights).sum().backward()
    torch.testing.assert_close(x.grad, weights * (out != 0) / 0.7)


def test_evaluation_and_p_zero_are_the_identity_and_masks_follow_the_seed():
    x = torch.randn(3, 50)
    layer = Dropout(0.5)
    assert layer.eval()(x) is x and dropout(x, 0.0, training=True) is x
    layer.train()
    torch.manual_seed(7)
    first = layer(x)
    torch.manual_seed(7)
    assert torch.equal(layer(x), first) and not torch.equal(first, x)


def test_keeps_the_input_dtype_under_autocast():
    x = torch.randn(8, 8, dtype=torch.bfloat16)
    assert dropout(x, 0.2, training=True).dtype == torch.bfloat16


@pytest.mark.parametrize("p", [-0.1, 1.0])
def test_rejects_a_probability_outside_zero_to_one(p):
    with pytest.raises(ValueError, match="dropout probability"):
        Dropout(p)
