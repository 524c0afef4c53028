"""Nodes of the patching pipeline: uint8 spot patches cut from each section's H&E image."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping

import anndata as ad
import numpy as np
import pandas as pd

from thitogene_kedro.processing.patches import PatchingParams, cut_patches
from thitogene_kedro.profiling import ResourceMeter
from thitogene_kedro.sections.images import SlideImage

logger = logging.getLogger(__name__)


def extract_section_patches(
    preprocessed_sections: Mapping[str, Callable[[], ad.AnnData]],
    raw_images: Mapping[str, Callable[[], SlideImage]],
    params: PatchingParams,
) -> tuple[dict[str, np.ndarray], pd.DataFrame]:
    """Patches of every preprocessed section that has an image, one section at a time.

    Sections without an image are skipped with a logged reason. Each section's patches are stored with
    their spot ids (``obs_names`` of the preprocessed section), by which training joins them to the graph.

    Returns:
        ``(patches, report)``: ``{section: {"patches": uint8 (N, H, W, 3), "spot_ids": (N,)}}`` and one report row per section
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
        patches[name] = {"patches": section_patches, "spot_ids": np.asarray(adata.obs_names, dtype=str)}
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
