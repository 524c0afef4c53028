"""Per-spot features of one section: patches cut at the encoder's field of view, encoded in batches.

A patch covers the encoder's field (``input_px × mpp`` µm, 112 µm for the 224 px / 0.5 µm encoders)
at the section's own resolution and is resized to ``input_px``. Patches are cut and encoded one
batch at a time, so memory holds one batch of pixels and the ``(N, dim)`` features, whatever the
section's size.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field

from thitogene_kedro.encoders.frozen import FrozenEncoder
from thitogene_kedro.processing.patches import PatchingParams, cut_patches
from thitogene_kedro.sections.images import SlideImage

logger = logging.getLogger(__name__)


class FeatureParams(BaseModel):
    """``features`` (``conf/base/parameters_features.yml``): how the encoder runs (the encoder and its
    weights are the catalog's ``frozen_encoder``)."""

    model_config = ConfigDict(extra="forbid")

    batch_size: int = Field(64, ge=1)
    device: str = "auto"
    pad_value: int = Field(255, ge=0, le=255)


def progress_logger(label: str, batch_size: int) -> Callable[[int, int], None]:
    """A ``section_features`` progress callback logging ``<label>, i of N spots`` every ten batches
    and at the end."""

    def progress(done: int, total: int) -> None:
        if done == total or done // batch_size % 10 == 0:
            logger.info("%s, %d of %d spots", label, done, total)

    return progress


def read_size(encoder: FrozenEncoder, section_mpp: float) -> int:
    """Pixels of the section's image that cover the encoder's field of view."""
    return max(8, round(encoder.spec.field_um / section_mpp))


def section_features(
    encoder: FrozenEncoder,
    image: SlideImage,
    pixel_xy: np.ndarray,
    section_mpp: float,
    params: FeatureParams,
    progress: Callable[[int, int], None] | None = None,
) -> np.ndarray:
    """``(N, dim)`` float32 features of the spots centred at ``pixel_xy`` (full-resolution pixels),
    ``params.batch_size`` patches at a time."""
    device = next(encoder.model.parameters()).device
    patching = PatchingParams(patch_size=encoder.spec.input_px, pad_value=params.pad_value)
    size = read_size(encoder, section_mpp)
    batch_size = params.batch_size
    features = np.empty((len(pixel_xy), encoder.identity.dim), dtype=np.float32)
    for start in range(0, len(pixel_xy), batch_size):
        stop = min(start + batch_size, len(pixel_xy))
        patches, _ = cut_patches(image, pixel_xy[start:stop], patching, read_size=size)
        features[start:stop] = encoder(torch.from_numpy(patches).to(device)).cpu().numpy()
        if progress is not None:
            progress(stop, len(pixel_xy))
    return features
