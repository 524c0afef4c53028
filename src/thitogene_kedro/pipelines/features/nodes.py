"""Nodes of the features pipeline: each section's spots through a frozen encoder, once per encoder.

Features are cached as ``<encoder>-<weights hash>/<section>`` partitions of ``encoder_features``:
a section already there for this encoder and these weights is not computed again, and another
encoder's or another file's features never stand in for them. Patches come from a HEST sample's
own patch file where it fits the encoder (``features.patches``), else they are cut from the slide.
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
from thitogene_kedro.encoders.features import (
    SectionFeatureParams,
    progress_logger,
    read_size,
    section_features,
    stored_features,
    stored_patches_misfit,
)
from thitogene_kedro.errors import ProjectError
from thitogene_kedro.models.runtime import resolve_device
from thitogene_kedro.sections.hest import HestPatches
from thitogene_kedro.sections.images import SlideImage
from thitogene_kedro.sections.spatial_layout import section_mpp

logger = logging.getLogger(__name__)


def _encode(
    name: str, section: Callable[[], ad.AnnData], patches: Callable[[], SlideImage | HestPatches],
    encoder: FrozenEncoder, params: SectionFeatureParams, step: tuple[int, int],
) -> dict[str, np.ndarray]:  # fmt: skip
    """One section's partition, read and computed when the dataset saves it (one section in memory
    at a time), from the slide or from the stored patches ``patches`` opens."""
    k, n = step
    adata = section()
    mpp, spot_ids = section_mpp(adata), np.asarray(adata.obs_names, dtype=str)
    progress = progress_logger(f"Features {k} of {n}: section {name}", params.batch_size)
    with patches() as source:
        if isinstance(source, HestPatches):
            logger.info("Features %d of %d: section %s, %d spots, stored patches of %s", k, n, name, adata.n_obs,
                        source.path)  # fmt: skip
            features = stored_features(encoder, source, source.rows_of(spot_ids), params, progress)
        else:
            logger.info("Features %d of %d: section %s, %d spots, %d px of the slide per patch", k, n, name,
                        adata.n_obs, read_size(encoder, mpp))  # fmt: skip
            features = section_features(encoder, source, np.asarray(adata.obsm["spatial"]), mpp, params, progress)
    kind = "stored" if isinstance(source, HestPatches) else "slide"
    return {"features": features, "spot_ids": spot_ids, "patch_source": np.asarray(kind)}


def _patch_source(
    name: str, section: Callable[[], ad.AnnData], stored: Callable[[], HestPatches] | None, encoder: FrozenEncoder,
    mode: str,
) -> tuple[bool, str]:  # fmt: skip
    """Whether section ``name`` is encoded from its stored patches, and the report's word on it.

    Raises:
        ProjectError: ``features.patches: stored`` and the stored patches do not fit.
    """
    if mode == "slide":
        return False, "slide"
    misfit = "the source stores no patches for it"
    if stored is not None:
        adata = section()
        with stored() as patches:
            misfit = stored_patches_misfit(encoder, patches, np.asarray(adata.obs_names, dtype=str),
                                           np.asarray(adata.obsm["spatial"]))  # fmt: skip
            where = patches.path
        if misfit is None:
            return True, f"stored: {where.name}"
    if mode == "stored":
        raise ProjectError(f"features.patches is 'stored' but section {name}'s stored patches do not fit the "
                           f"encoder: {misfit}; set features.patches: auto to cut those from the slide")  # fmt: skip
    if stored is not None:
        logger.info("Features: section %s cut from the slide, not its stored patches: %s", name, misfit)
    return False, "slide" if stored is None else f"slide ({misfit})"


def encode_sections(
    preprocessed_sections: Mapping[str, Callable[[], ad.AnnData]],
    raw_images: Mapping[str, Callable[[], SlideImage]],
    stored_patches: Mapping[str, Callable[[], HestPatches]],
    encoder: FrozenEncoder,
    cached: Mapping[str, Callable[[], Any]],
    params: SectionFeatureParams,
) -> tuple[dict[str, Callable[[], dict[str, np.ndarray]]], pd.DataFrame, dict[str, Any]]:
    """The sections whose features this encoder has not cached yet, as lazy partitions; where each
    one's patches come from is settled (and checked) before any is encoded.

    Returns:
        ``(partitions, report, identity)``: ``{"<encoder key>/<section>": compute}``, one report
        row per section (cached, computed, or skipped and why, and where its patches come from)
        and the encoder's identity.
    """
    params = SectionFeatureParams.model_validate(params)
    encoder.to(resolve_device(params.device))
    key = encoder.identity.key
    todo, rows = {}, []
    for name in sorted(preprocessed_sections):
        if f"{key}/{name}" in cached:
            rows.append({"section": name, "status": "cached", "patches": ""})
            continue
        use_stored, patches = _patch_source(name, preprocessed_sections[name], stored_patches.get(name), encoder,
                                            params.patches)  # fmt: skip
        if not use_stored and name not in raw_images:
            logger.warning("Features: skipping section %s: it has no full-resolution image", name)
            rows.append({"section": name, "status": "skipped: no image", "patches": ""})
            continue
        todo[name] = stored_patches[name] if use_stored else raw_images[name]
        rows.append({"section": name, "status": "computed", "patches": patches})
    cached_count = sum(r["status"] == "cached" for r in rows)
    logger.info("Features (%s): %d sections to encode, %d already cached", key, len(todo), cached_count)
    partitions = {
        f"{key}/{name}": partial(_encode, name, preprocessed_sections[name], source, encoder, params, (k, len(todo)))
        for k, (name, source) in enumerate(todo.items(), start=1)
    }
    identity = {**encoder.identity.__dict__, "key": key, "field_um": encoder.spec.field_um,
                "pooling": encoder.spec.pooling, "architecture": encoder.spec.architecture}  # fmt: skip
    return partitions, pd.DataFrame(rows), identity
