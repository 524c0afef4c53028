"""Nodes of the SpatialData export: spatial AnnData predictions as SpatialData objects."""

from __future__ import annotations

from typing import Any

import anndata as ad

from thitogene_kedro.sections.spatialdata_export import to_spatialdata


def predictions_as_spatialdata(predictions: ad.AnnData) -> Any:
    """Predictions (inference, or a fold's held-out sections) as SpatialData: the tissue image,
    spot circles at their true diameter, the expression table (``sections.spatialdata_export``)."""
    return to_spatialdata(predictions)
