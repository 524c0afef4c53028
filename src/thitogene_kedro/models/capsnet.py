"""Efficient-CapsNet (Mazzia et al., Sci Rep 2021) as THItoGene uses it (``efficient_capsnet.py``).

1. Stem: valid convolutions, each followed by BatchNorm and ReLU (paper Eq. 3); reference sizes
   16→32 k5, 32→64 k3, 64→64 k3, 64→128 k3 stride 2, giving 128×9×9 from a 28×28 input.
2. Primary capsules: a depthwise convolution whose kernel covers the whole remaining map (9×9)
   turns the C channels into C scalars, read as ``n`` capsules of ``d`` dimensions (16×8), then
   squashed.
3. Squash (Eq. 4): u = (1 − 1/(e^{‖s‖} + ε)) · s/(‖s‖ + ε), ε = 1e-20.
4. Self-attention routing (Eqs. 5–7): predictions û[n,i] = u_i W[n,i] ∈ R^{d_out};
   agreement c[n,i] = Σ_k ⟨û[n,i], û[n,k]⟩ / √d_out, softmax over the output capsules n, plus the
   log prior b[n,i]; s_n = Σ_i (c[n,i] + b[n,i]) û[n,i]; output squash(s_n).
   The scale is a Python float (the reference divides by a CPU tensor, which breaks on CUDA:
   ``reference-spec.md`` §1.4-3).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

SQUASH_EPS = 1e-20


def squash(s: torch.Tensor, eps: float = SQUASH_EPS) -> torch.Tensor:
    """Efficient-CapsNet squash over the last axis."""
    norm = torch.linalg.vector_norm(s, dim=-1, keepdim=True)
    return (1 - 1 / (torch.exp(norm) + eps)) * (s / (norm + eps))


def conv_output_size(size: int, kernel: int, stride: int) -> int:
    """Spatial size after a valid (unpadded) convolution."""
    return (size - kernel) // stride + 1


class CapsuleStem(nn.Module):
    """Valid Conv → BN → ReLU layers; attribute names follow the reference state dict."""

    def __init__(self, in_channels: int, channels: Sequence[int], kernels: Sequence[int], strides: Sequence[int]):
        super().__init__()
        if not len(channels) == len(kernels) == len(strides):
            raise ValueError("capsnet stem channels, kernels and strides must have the same length")
        self.depth = len(channels)
        previous = in_channels
        for i, (c, k, s) in enumerate(zip(channels, kernels, strides, strict=True), start=1):
            conv = nn.Conv2d(previous, c, k, stride=s)
            nn.init.kaiming_normal_(conv.weight)
            setattr(self, f"conv{i}", conv)
            setattr(self, f"batch_norm{i}", nn.BatchNorm2d(c))
            previous = c

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Channels-first: in train mode PyTorch's CPU batch norm over a channels-last tensor carries
        # ~300x the float32 rounding error of its channels-first kernel (batch statistics, output and
        # gradients; docs/models/thitogene.md), and the convolutions keep their input's layout.
        x = x.contiguous()
        for i in range(1, self.depth + 1):
            x = F.relu(getattr(self, f"batch_norm{i}")(getattr(self, f"conv{i}")(x)))
        return x


class PrimaryCapsules(nn.Module):
    """Depthwise conv over the whole ``map_size``² map → ``(M, n_capsules, capsule_dim)``, squashed."""

    def __init__(self, channels: int, map_size: int, n_capsules: int, capsule_dim: int) -> None:
        super().__init__()
        if n_capsules * capsule_dim != channels:
            raise ValueError(
                f"primary capsules {n_capsules}×{capsule_dim} must equal the stem's {channels} output channels"
            )
        self.n_capsules, self.capsule_dim = n_capsules, capsule_dim
        self.depthwise_conv = nn.Conv2d(channels, channels, map_size, groups=channels)
        nn.init.kaiming_normal_(self.depthwise_conv.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return squash(self.depthwise_conv(x).view(x.shape[0], self.n_capsules, self.capsule_dim))


class SelfAttentionRouting(nn.Module):
    """Routes ``(M, n_in, d_in)`` capsules to ``(M, n_out, d_out)`` (Efficient-CapsNet Eqs. 5–7)."""

    def __init__(self, n_in: int, d_in: int, n_out: int, d_out: int) -> None:
        super().__init__()
        self.W = nn.Parameter(torch.empty(n_out, n_in, d_in, d_out))
        self.b = nn.Parameter(torch.zeros(n_out, n_in, 1))
        nn.init.kaiming_normal_(self.W)
        self.scale = 1.0 / math.sqrt(d_out)

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        predictions = torch.einsum("mij,nijz->mniz", u, self.W)  # û: (M, n_out, n_in, d_out)
        agreement = torch.einsum("mniz,mnkz->mni", predictions, predictions)[..., None] * self.scale
        coupling = torch.softmax(agreement, dim=1) + self.b
        return squash((predictions * coupling).sum(dim=-2))


class CapsuleEncoder(nn.Module):
    """Stem → primary capsules → routing: ``(M, C, S, S)`` → ``(M, n_out, d_out)``."""

    def __init__(
        self,
        in_channels: int,
        in_size: int,
        *,
        stem_channels: Sequence[int],
        stem_kernels: Sequence[int],
        stem_strides: Sequence[int],
        primary_capsules: int,
        primary_dim: int,
        capsules: int,
        capsule_dim: int,
    ) -> None:
        super().__init__()
        size = in_size
        for k, s in zip(stem_kernels, stem_strides, strict=True):
            size = conv_output_size(size, k, s)
        if size < 1:
            raise ValueError(f"the capsule stem leaves no feature map for a {in_size}×{in_size} input")
        self.map_size = size
        self.stem = CapsuleStem(in_channels, stem_channels, stem_kernels, stem_strides)
        self.primary_caps = PrimaryCapsules(stem_channels[-1], size, primary_capsules, primary_dim)
        self.digit_caps = SelfAttentionRouting(primary_capsules, primary_dim, capsules, capsule_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.digit_caps(self.primary_caps(self.stem(x)))
