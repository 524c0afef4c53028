"""ODConv against the reference's grouped-convolution formulation."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from thitogene_kedro.models.odconv import ODConv2d


def reference_odconv(conv: ODConv2d, x: torch.Tensor) -> torch.Tensor:
    """THItoGene ``ODConv.py`` ``_forward_impl_common``: per-sample kernels as one grouped conv."""
    channel, filters, spatial, kernel = conv.attention(x)
    m, c, h, w = x.shape
    x = (x * channel[:, :, None, None]).reshape(1, -1, h, w)
    weight = (spatial[:, None, None, None] * kernel[:, :, None, None, None, None] * conv.weight[None]).sum(dim=1)
    weight = weight.reshape(-1, c, conv.kernel_size, conv.kernel_size)
    out = F.conv2d(x, weight, stride=conv.stride, padding=conv.padding, groups=m)
    return out.view(m, conv.out_channels, out.shape[-2], out.shape[-1]) * filters[:, :, None, None]


def test_paper_odconv_shape_count_and_reference_equivalence():
    torch.manual_seed(0)
    conv = ODConv2d(3, 16, 4, stride=4).eval()
    assert sum(p.numel() for p in conv.parameters()) == 3_815
    assert conv.attention.fc.out_channels == 16  # max(int(3 * 0.0625), 16)
    x = torch.rand(5, 3, 112, 112) * 255
    out = conv(x)
    assert out.shape == (5, 16, 28, 28)
    torch.testing.assert_close(out, reference_odconv(conv, x), rtol=1e-4, atol=1e-3)


def test_odconv_with_padding_and_overlapping_stride_matches_too():
    torch.manual_seed(1)
    conv = ODConv2d(4, 6, 3, stride=2, padding=1, kernel_num=3).eval()
    x = torch.randn(3, 4, 17, 17)
    torch.testing.assert_close(conv(x), reference_odconv(conv, x), rtol=1e-4, atol=1e-5)


def test_attentions_are_normalised_and_input_dependent():
    torch.manual_seed(0)
    conv = ODConv2d(3, 16, 4, stride=4).eval()
    x = torch.rand(4, 3, 32, 32)
    channel, filters, spatial, kernel = conv.attention(x)
    torch.testing.assert_close(kernel.sum(dim=1), torch.ones(4))
    assert channel.shape == (4, 3) and filters.shape == (4, 16) and spatial.shape == (4, 4, 4)
    assert ((spatial > 0) & (spatial < 1)).all()
    assert not torch.allclose(kernel[0], kernel[1])  # a different kernel mixture per sample


def test_channels_last_input_gives_the_same_output_and_gradients_in_channels_last():
    torch.manual_seed(2)
    conv = ODConv2d(3, 16, 4, stride=4).train().double()  # float64: the layouts sum in different orders
    x = torch.rand(6, 3, 32, 32, dtype=torch.float64)
    results = []
    for memory_format in (torch.contiguous_format, torch.channels_last):
        inputs = x.clone().to(memory_format=memory_format).requires_grad_()
        out = conv(inputs)
        (out * torch.linspace(-1, 1, out.numel()).view_as(out)).sum().backward()
        results.append((out, inputs.grad, [p.grad.clone() for p in conv.parameters()]))
        conv.zero_grad()
    (out, grad_x, grads), (last_out, last_grad_x, last_grads) = results
    assert last_out.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(last_out, out)
    torch.testing.assert_close(last_grad_x, grad_x)
    for grad, last_grad in zip(grads, last_grads, strict=True):
        torch.testing.assert_close(last_grad, grad)
