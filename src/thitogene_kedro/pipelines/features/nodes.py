"""Nodes of the features pipeline: each section's spots through a frozen encoder, once per encoder.

Features are cached as ``<encoder>-<weights hash>/<section>`` partitions of ``encoder_features``:
a section already there for this encoder and these weights is not computed again, and another
encoder's or another file's features never stand in for them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from functools import partial
from typing import Any

import anndata as ad
import numpy as np
import pandas as pd

from thitogene_kedro.encoders import FrozenEncoder
from thitogene_kedro.encoders.features import FeatureParams, progress_logger, read_size, section_features
from thitogene_kedro.models.runtime import resolve_device
from thitogene_kedro.sections.images import SlideImage
from thitogene_kedro.sections.spatial_layout import section_mpp

logger = logging.getLogger(__name__)


def _encode(
    name: str, section: Callable[[], ad.AnnData], image: Callable[[], SlideImage], encoder: FrozenEncoder,
    params: FeatureParams, step: tuple[int, int],
) -> dict[str, np.ndarray]:  # fmt: skip
    """One section's partition, read and computed when the dataset saves it (one section in memory
    at a time)."""
    k, n = step
    adata = section()
    mpp = section_mpp(adata)
    logger.info("Features %d of %d: section %s, %d spots, %d px of the slide per patch", k, n, name, adata.n_obs,
                read_size(encoder, mpp))  # fmt: skip

    with image() as slide:
        features = section_features(encoder, slide, np.asarray(adata.obsm["spatial"]), mpp, params,
                                    progress_logger(f"Features {k} of {n}: section {name}", params.batch_size))  # fmt: skip
    return {"features": features, "spot_ids": np.asarray(adata.obs_names, dtype=str)}


def encode_sections(
    preprocessed_sections: Mapping[str, Callable[[], ad.AnnData]],
    raw_images: Mapping[str, Callable[[], SlideImage]],
    encoder: FrozenEncoder,
    cached: Mapping[str, Callable[[], Any]],
    params: FeatureParams,
) -> tuple[dict[str, Callable[[], dict[str, np.ndarray]]], pd.DataFrame, dict[str, Any]]:
    """The sections whose features this encoder has not cached yet, as lazy partitions.

    Returns:
        ``(partitions, report, identity)``: ``{"<encoder key>/<section>": compute}``, one report
        row per section (cached, computed, or skipped and why) and the encoder's identity.
    """
    params = FeatureParams.model_validate(params)
    encoder.to(resolve_device(params.device))
    key = encoder.identity.key
    todo, rows = [], []
    for name in sorted(preprocessed_sections):
        if name not in raw_images:
            logger.warning("Features: skipping section %s: it has no full-resolution image", name)
            rows.append({"section": name, "status": "skipped: no image"})
        elif f"{key}/{name}" in cached:
            rows.append({"section": name, "status": "cached"})
        else:
            todo.append(name)
            rows.append({"section": name, "status": "computed"})
    cached_count = sum(r["status"] == "cached" for r in rows)
    logger.info("Features (%s): %d sections to encode, %d already cached", key, len(todo), cached_count)
    partitions = {
        f"{key}/{name}": partial(
            _encode, name, preprocessed_sections[name], raw_images[name], encoder, params, (k, len(todo))
        )
        for k, name in enumerate(todo, start=1)
    }
    identity = {**encoder.identity.__dict__, "key": key, "field_um": encoder.spec.field_um,
                "pooling": encoder.spec.pooling, "architecture": encoder.spec.architecture}  # fmt: skip
    return partitions, pd.DataFrame(rows), identity
