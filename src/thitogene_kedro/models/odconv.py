"""Omni-dimensional dynamic convolution (ODConv; Li et al., ICLR 2022), THItoGene's first layer.

For each input x, an attention branch φ(x) = ReLU(BN(W_fc · GAP(x))) feeds four heads:

- channel attention  α_c = σ(W_c φ / T) ∈ R^{C_in}     (scales the input channels)
- filter attention   α_f = σ(W_f φ / T) ∈ R^{C_out}    (scales the output channels)
- spatial attention  α_s = σ(W_s φ / T) ∈ R^{k×k}      (masks the kernel positions)
- kernel attention   α_w = softmax(W_w φ / T) ∈ R^{n}  (mixes the n candidate kernels)

and the convolution is  y = α_f ⊙ ((Σ_i α_wi · α_s ⊙ W_i) * (α_c ⊙ x))  (paper Eq. 2).
The reference (THItoGene ``ODConv.py``) shares α_s over the n kernels and never anneals the
temperature (T = 1); both are kept. The attention width is max(⌊C_in · reduction⌋, min_channels).
Parameter names follow the reference state dict (``weight``, ``attention.{fc,bn,...}``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class ODConvAttention(nn.Module):
    """φ(x) and its four attention heads."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        *,
        kernel_num: int,
        reduction: float,
        min_channels: int,
        temperature: float,
    ) -> None:
        super().__init__()
        width = max(int(in_channels * reduction), min_channels)
        self.kernel_size = kernel_size
        self.temperature = temperature
        self.fc = nn.Conv2d(in_channels, width, 1, bias=False)
        self.bn = nn.BatchNorm2d(width)
        self.channel_fc = nn.Conv2d(width, in_channels, 1)
        self.filter_fc = nn.Conv2d(width, out_channels, 1)
        self.spatial_fc = nn.Conv2d(width, kernel_size * kernel_size, 1)
        self.kernel_fc = nn.Conv2d(width, kernel_num, 1)
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
                if module.bias is not None:
                    nn.init.zeros_(module.bias)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Return ``(channel (M,C_in), filter (M,C_out), spatial (M,k,k), kernel (M,n))`` attentions."""
        phi = F.relu(self.bn(self.fc(x.mean(dim=(2, 3), keepdim=True))))
        t = self.temperature
        m, k = x.shape[0], self.kernel_size
        channel = torch.sigmoid(self.channel_fc(phi).flatten(1) / t)
        filters = torch.sigmoid(self.filter_fc(phi).flatten(1) / t)
        spatial = torch.sigmoid(self.spatial_fc(phi).view(m, k, k) / t)
        kernel = torch.softmax(self.kernel_fc(phi).flatten(1) / t, dim=1)
        return channel, filters, spatial, kernel


class ODConv2d(nn.Module):
    """ODConv with ``kernel_num`` candidate kernels, no bias, ``groups = 1``."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        *,
        stride: int = 1,
        padding: int = 0,
        kernel_num: int = 4,
        reduction: float = 0.0625,
        min_channels: int = 16,
        temperature: float = 1.0,
    ) -> None:
        super().__init__()
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size, self.stride, self.padding = kernel_size, stride, padding
        self.attention = ODConvAttention(
            in_channels, out_channels, kernel_size, kernel_num=kernel_num, reduction=reduction,
            min_channels=min_channels, temperature=temperature,
        )  # fmt: skip
        self.weight = nn.Parameter(torch.empty(kernel_num, out_channels, in_channels, kernel_size, kernel_size))
        for i in range(kernel_num):
            nn.init.kaiming_normal_(self.weight[i], mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(M, C_in, H, W)`` → ``(M, C_out, H', W')``, one kernel per sample.

        When the kernel's blocks tile the input (stride = kernel, no padding) they are taken by a
        reshape in the channel-last layout, and the output comes out channels-last: from a
        channels-last input (the model's pixels) that costs one gather and no transposing copy.
        Otherwise the blocks come from ``unfold``.
        """
        channel, filters, spatial, kernel = self.attention(x)
        m, c, h, w = x.shape
        k = self.kernel_size
        h_out = (h + 2 * self.padding - k) // self.stride + 1
        w_out = (w + 2 * self.padding - k) // self.stride + 1
        # Σ_i α_wi · α_s ⊙ W_i, with α_c and α_f folded into the kernel's input and output channels:
        # α_f ⊙ ((W ⊙ α_c) * x) = α_f ⊙ (W * (α_c ⊙ x)), without touching the large x or y
        if self.stride == k and self.padding == 0 and h % k == 0 and w % k == 0:
            weight = torch.einsum("mn,mab,mc,mo,nocab->mabco", kernel, spatial, channel, filters, self.weight)
            blocks = x.permute(0, 2, 3, 1).view(m, h // k, k, w // k, k, c).transpose(2, 3)
            out = torch.bmm(
                blocks.reshape(m, h_out * w_out, k * k * c), weight.reshape(m, -1, self.out_channels).to(x.dtype)
            )
            return out.view(m, h_out, w_out, self.out_channels).permute(0, 3, 1, 2)
        weight = torch.einsum("mn,mab,mc,mo,nocab->mocab", kernel, spatial, channel, filters, self.weight)
        columns = F.unfold(x, k, stride=self.stride, padding=self.padding)
        return torch.bmm(weight.reshape(m, self.out_channels, -1).to(x.dtype), columns).view(
            m, self.out_channels, h_out, w_out
        )
