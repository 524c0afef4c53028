"""Nodes of the patching pipeline: uint8 spot patches cut from each section's H&E image."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping

import anndata as ad
import numpy as np
import pandas as pd
from PIL import Image

from thitogene_kedro.pipelines.patching.params import PatchingParams
from thitogene_kedro.profiling import ResourceMeter
from thitogene_kedro.sections.images import SlideImage

logger = logging.getLogger(__name__)


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


def extract_section_patches(
    preprocessed_sections: Mapping[str, Callable[[], ad.AnnData]],
    raw_images: Mapping[str, Callable[[], SlideImage]],
    params: PatchingParams,
) -> tuple[dict[str, np.ndarray], pd.DataFrame]:
    """Patches of every preprocessed section that has an image, one section at a time.

    Sections without an image are skipped with a logged reason. Patches are in the section's spot
    order (``obs_names`` of the preprocessed section).

    Returns:
        ``(patches, report)``: ``{section: uint8 array}`` and one report row per section
        (spots, padded patches, seconds, peak memory).
    """
    params = PatchingParams.model_validate(params)
    patches: dict[str, np.ndarray] = {}
    rows = []
    names = sorted(preprocessed_sections)
    for index, name in enumerate(names, start=1):
        if name not in raw_images:
            logger.warning("Patching: skipping section %s: it has no full-resolution image", name)
            rows.append({"section": name, "status": "skipped: no image", "n_spots": None})
            continue
        adata = preprocessed_sections[name]()
        with ResourceMeter() as meter, raw_images[name]() as image:
            section_patches, padded = cut_patches(image, adata.obsm["spatial"], params)
        patches[name] = section_patches
        if padded.any():
            logger.warning(
                "Section %s: %d of %d patches cross the image border and were padded with %d: %s",
                name,
                int(padded.sum()),
                len(padded),
                params.pad_value,
                list(adata.obs_names[padded][:10]),
            )
        logger.info(
            "Patching %d/%d: section %s, %d patches in %.1f s, peak +%s MiB",
            index,
            len(names),
            name,
            len(section_patches),
            meter.seconds,
            f"{meter.peak_increase_mib:.0f}" if meter.peak_increase_mib is not None else "?",
        )
        rows.append(
            {
                "section": name,
                "status": "ok",
                "n_spots": len(section_patches),
                "n_padded": int(padded.sum()),
                "image_width": image.width,
                "image_height": image.height,
                "seconds": round(meter.seconds, 3),
                "peak_rss_mib": meter.peak_rss_mib,
                "peak_increase_mib": meter.peak_increase_mib,
            }
        )
    return patches, pd.DataFrame(rows)
