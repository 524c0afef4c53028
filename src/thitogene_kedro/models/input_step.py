"""The model's input step: uint8 patches → float tensors in the network's range.

``unit`` maps pixels to [0, 1] (x / 255); ``raw`` keeps 0–255 floats, as all three reference
implementations do (``reference-spec.md`` §1.1). The choice changes results (for HisToGene the raw
scale makes the patch token ~70× larger than the position code), so it is an explicit option.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

PixelScale = Literal["unit", "raw"]


class PixelInput(nn.Module):
    """``(..., H, W, 3)`` uint8 → ``(..., 3, H, W)`` float (channels first) or kept channel-last.

    ``channels_last_memory`` keeps the pixels' own channel-last layout under the ``(M, 3, H, W)`` shape
    (``torch.channels_last``): no copy, and the convolutions that follow run in that layout, which
    oneDNN computes faster on CPU than the channels-first one. Values are the same either way.
    """

    def __init__(
        self,
        scale: PixelScale = "unit",
        channels_first: bool = True,
        patch_size: int | None = None,
        channels_last_memory: bool = False,
    ) -> None:
        super().__init__()
        self.scale = scale
        self.channels_first = channels_first
        self.patch_size = patch_size
        self.channels_last_memory = channels_last_memory

    def forward(self, patches: torch.Tensor) -> torch.Tensor:
        if patches.dtype != torch.uint8:
            raise TypeError(f"patches must be uint8 (H, W, 3) crops, got {patches.dtype}")
        if patches.shape[-1] != 3:
            raise ValueError(f"patches must be channel-last RGB (..., H, W, 3), got shape {tuple(patches.shape)}")
        size = self.patch_size
        if size is not None and tuple(patches.shape[-3:-1]) != (size, size):
            raise ValueError(f"the model expects {size}×{size} patches, got {tuple(patches.shape[-3:-1])}")
        x = patches / 255.0 if self.scale == "unit" else patches.float()  # one pass: uint8 / 255 is float32
        if not self.channels_first:
            return x
        x = x.movedim(-1, -3)
        return x if self.channels_last_memory and x.dim() == 4 else x.contiguous()

    def extra_repr(self) -> str:
        return (
            f"scale={self.scale!r}, channels_first={self.channels_first}, patch_size={self.patch_size}, "
            f"channels_last_memory={self.channels_last_memory}"
        )
