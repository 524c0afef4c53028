"""The ``spatialdata`` pipeline: stored predictions written as SpatialData zarr stores, on request."""

from __future__ import annotations

from kedro.pipeline import Node, Pipeline

from thitogene_kedro.pipelines.spatialdata_export.nodes import predictions_as_spatialdata
from thitogene_kedro.training.folds import Fold


def create_pipeline(folds: list[Fold] | tuple[Fold, ...] = (), **kwargs) -> Pipeline:
    """One node per fold with held-out sections: ``<fold>.test_predictions`` -> ``<fold>.test_spatialdata``."""
    steps = [
        Node(predictions_as_spatialdata, f"{f.name}.test_predictions", f"{f.name}.test_spatialdata",
             name=f"{f.name}_as_spatialdata")
        for f in folds
        if f.test
    ]  # fmt: skip
    return Pipeline(steps, tags=["spatialdata"])


def create_inference_pipeline(**kwargs) -> Pipeline:
    """``inference_predictions`` -> ``inference_spatialdata`` (after ``kedro run --pipelines inference``)."""
    return Pipeline(
        [
            Node(
                predictions_as_spatialdata,
                "inference_predictions",
                "inference_spatialdata",
                name="inference_as_spatialdata",
            )
        ],
        tags=["spatialdata"],
    )
