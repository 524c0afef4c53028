"""Hist2ST's self-distillation augmentations on float patch stacks (``baselines-spec.md`` §2.4).

Grayscale with probability p (ITU-R 601 luma, replicated to 3 channels) → rotation by an angle
drawn uniformly from ±``degrees`` (nearest neighbour, corners filled with 0) → horizontal flip of
the last axis with probability p. ``draw: spot`` draws each patch's augmentation independently;
``draw: section`` draws once per section and applies it to all its patches, as the reference does
(it transforms the whole ``(N, 3, H, W)`` stack at once).
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F

AugmentationDraw = Literal["spot", "section"]

_LUMA = (0.2989, 0.587, 0.114)


def augment_patches(
    patches: torch.Tensor,
    section_index: torch.Tensor,
    draw: AugmentationDraw,
    grayscale_p: float,
    rotation_degrees: float,
    hflip_p: float,
) -> torch.Tensor:
    """``(M, 3, H, W)`` float patches of the sections in ``section_index`` ``(M,)`` → augmented copy."""
    m = patches.shape[0]
    if draw == "section":
        n_draws, index = int(section_index.max()) + 1, section_index
    else:
        n_draws, index = m, torch.arange(m, device=patches.device)
    uniform = torch.rand(3, n_draws, device=patches.device)[:, index]
    gray, angle, flip = uniform[0] < grayscale_p, (uniform[1] * 2 - 1) * math.radians(rotation_degrees), uniform[2]
    flip = flip < hflip_p
    luma = torch.tensor(_LUMA, device=patches.device, dtype=patches.dtype).view(1, 3, 1, 1)
    grey = (patches * luma).sum(dim=1, keepdim=True).expand_as(patches)
    x = torch.where(gray[:, None, None, None], grey, patches)
    cos, sin = torch.cos(angle), torch.sin(angle)
    zeros = torch.zeros_like(cos)
    theta = torch.stack([torch.stack([cos, -sin, zeros], -1), torch.stack([sin, cos, zeros], -1)], 1)
    grid = F.affine_grid(theta.to(x.dtype), list(x.shape), align_corners=False)
    x = F.grid_sample(x, grid, mode="nearest", padding_mode="zeros", align_corners=False)
    return torch.where(flip[:, None, None, None], x.flip(-1), x)
