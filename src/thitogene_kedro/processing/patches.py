"""Spot patches: uint8 RGB crops centred on each spot, cut from a slide image without a float copy."""

from __future__ import annotations

from typing import Literal

import numpy as np
from PIL import Image
from pydantic import BaseModel, ConfigDict, Field

from thitogene_kedro.sections.images import SlideImage


class PatchingParams(BaseModel):
    """How spot patches are cut from the full-resolution image.

    A patch is ``patch_size`` x ``patch_size`` RGB uint8 pixels centred on
    ``(floor(pixel_x), floor(pixel_y))``, stored as rows x columns x channels. ``orientation:
    reference_transposed`` reproduces the reference code's transposed crop (columns x rows), which
    matters only for its published checkpoints. Parts outside the image get ``pad_value``.
    """

    model_config = ConfigDict(extra="forbid")

    patch_size: int = Field(112, ge=8, le=2048)
    pad_value: int = Field(255, ge=0, le=255)
    orientation: Literal["standard", "reference_transposed"] = "standard"


def patch_origins(pixel_xy: np.ndarray, patch_size: int) -> np.ndarray:
    """Top-left ``(x0, y0)`` of each patch centred on ``floor(pixel)`` (integers)."""
    centres = np.floor(np.asarray(pixel_xy, dtype=np.float64)).astype(np.int64)
    return centres - patch_size // 2


def cut_patches(
    image: SlideImage, pixel_xy: np.ndarray, params: PatchingParams, read_size: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Cut one patch per spot from ``image``.

    ``read_size`` reads that many pixels around each centre and resizes them to ``patch_size``
    (a slide scanned at another resolution than the training data).

    Returns:
        ``(patches, padded)``: uint8 ``(N, size, size, 3)`` and a boolean per spot telling whether
        its patch crossed the image border and was padded.
    """
    params = PatchingParams.model_validate(params)
    size = params.patch_size
    read = read_size or size
    origins = patch_origins(pixel_xy, read)
    patches = np.empty((len(origins), size, size, 3), dtype=np.uint8)
    padded = np.zeros(len(origins), dtype=bool)
    for i, (x0, y0) in enumerate(origins):
        region, padded[i] = image.read_region(int(x0), int(y0), read, read, params.pad_value)
        if read != size:
            region = np.asarray(Image.fromarray(region).resize((size, size), Image.Resampling.BILINEAR))
        patches[i] = region
    if params.orientation == "reference_transposed":
        patches = np.ascontiguousarray(patches.transpose(0, 2, 1, 3))
    return patches, padded
