"""ConvMixer blocks (Trockman & Kolter 2022) as Hist2ST's patch encoder uses them (``HIST2ST.py``).

Block: x ← x + GELU(BN(DWConv(GELU(BN(DWConv(x))))))  (depthwise k×k, 'same' padding), then
x ← BN(GELU(PWConv(x)))  without a residual — the Hist2ST order (activation before the norm).
"""

from __future__ import annotations

import torch
from torch import nn


class ConvMixerBlock(nn.Module):
    """One Hist2ST ConvMixer block; names follow the reference (``dw.{0,1,3,4}``, ``pw.{0,2}``)."""

    def __init__(self, channels: int, kernel_size: int) -> None:
        super().__init__()
        self.dw = nn.Sequential(
            nn.Conv2d(channels, channels, kernel_size, groups=channels, padding="same"),
            nn.BatchNorm2d(channels),
            nn.GELU(),
            nn.Conv2d(channels, channels, kernel_size, groups=channels, padding="same"),
            nn.BatchNorm2d(channels),
            nn.GELU(),
        )
        self.pw = nn.Sequential(nn.Conv2d(channels, channels, 1), nn.GELU(), nn.BatchNorm2d(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pw(self.dw(x) + x)
