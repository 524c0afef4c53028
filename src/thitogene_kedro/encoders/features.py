"""Per-spot features of one section: patches cut at the encoder's field of view, encoded in batches.

A patch covers the encoder's field (``input_px × mpp`` µm, 112 µm for the 224 px / 0.5 µm encoders)
at the section's own resolution and is resized to ``input_px``. Patches are cut (or, for HEST-1k
samples, read from the sample's own ``patches/<id>.h5`` where they cover the same field) and encoded
one batch at a time, so memory holds one batch of pixels and the ``(N, dim)`` features, whatever
the section's size.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Literal

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field

from thitogene_kedro.encoders.frozen import FrozenEncoder
from thitogene_kedro.processing.patches import PatchingParams, cut_patches
from thitogene_kedro.sections.hest import HEST_PATCH_MPP, HestPatches
from thitogene_kedro.sections.images import SlideImage

logger = logging.getLogger(__name__)


class FeatureParams(BaseModel):
    """``features`` (``conf/base/parameters_features.yml``): how the encoder runs (the encoder and its
    weights are the catalog's ``frozen_encoder``)."""

    model_config = ConfigDict(extra="forbid")

    batch_size: int = Field(64, ge=1)
    device: str = "auto"
    pad_value: int = Field(255, ge=0, le=255)


class SectionFeatureParams(FeatureParams):
    """``features`` of the features pipeline: ``FeatureParams`` and where patches come from.

    ``patches``: ``auto`` reads a HEST sample's stored patches where they fit the encoder (same
    field of view, a patch for every spot, at the spots' centres) and cuts from the slide
    otherwise, saying why; ``stored`` requires them (an error before any work where they do not
    fit); ``slide`` always cuts from the slide.
    """

    patches: Literal["auto", "stored", "slide"] = "auto"


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
    patching = PatchingParams(patch_size=encoder.spec.input_px, pad_value=params.pad_value)
    size = read_size(encoder, section_mpp)
    return _encode_in_batches(
        encoder, len(pixel_xy), lambda start, stop: cut_patches(image, pixel_xy[start:stop], patching, read_size=size)[0],
        params.batch_size, progress,
    )  # fmt: skip


def stored_features(
    encoder: FrozenEncoder,
    stored: HestPatches,
    rows: np.ndarray,
    params: FeatureParams,
    progress: Callable[[int, int], None] | None = None,
) -> np.ndarray:
    """``(N, dim)`` float32 features of the open HEST patch file's ``rows`` (one per spot, in spot
    order; see ``stored_patches_misfit``), ``params.batch_size`` patches at a time."""
    return _encode_in_batches(
        encoder, len(rows), lambda start, stop: stored.read(rows[start:stop]), params.batch_size, progress
    )


def stored_patches_misfit(
    encoder: FrozenEncoder, stored: HestPatches, spot_ids: np.ndarray, pixel_xy: np.ndarray
) -> str | None:
    """Why the open HEST patch file cannot stand in for patches cut at the encoder's field around
    ``pixel_xy`` (full-resolution spot centres of ``spot_ids``), or ``None`` where it can."""
    stored_um = stored.patch_px * HEST_PATCH_MPP
    if abs(stored_um - encoder.spec.field_um) > 0.01 * encoder.spec.field_um:
        return f"its patches cover {stored_um:g} µm, the encoder's field is {encoder.spec.field_um:g} µm"
    rows = stored.rows_of(spot_ids)
    if (rows < 0).any():
        return f"{int((rows < 0).sum())} of {len(rows)} spots have no stored patch (e.g. {spot_ids[rows < 0][:3].tolist()})"
    centres = stored.corners[rows] + stored.source_px / 2
    offset = float(np.abs(centres - np.asarray(pixel_xy, dtype=np.float64)).max(initial=0.0))
    if offset > max(2.0, 0.02 * stored.source_px):
        return f"its patches lie up to {offset:.0f} px from the spot centres of the counts file"
    return None


def _encode_in_batches(
    encoder: FrozenEncoder,
    total: int,
    read_batch: Callable[[int, int], np.ndarray],
    batch_size: int,
    progress: Callable[[int, int], None] | None,
) -> np.ndarray:
    """Features of ``total`` patches, ``read_batch(start, stop)`` giving uint8 ``(stop - start, H, W, 3)``."""
    device = next(encoder.model.parameters()).device
    features = np.empty((total, encoder.identity.dim), dtype=np.float32)
    for start in range(0, total, batch_size):
        stop = min(start + batch_size, total)
        features[start:stop] = encoder(torch.from_numpy(read_batch(start, stop)).to(device)).cpu().numpy()
        if progress is not None:
            progress(stop, total)
    return features
