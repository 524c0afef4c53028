"""SpatialData export of the predictions (optional extra ``spatialdata``)."""

from thitogene_kedro.pipelines.spatialdata_export.pipeline import create_inference_pipeline, create_pipeline

__all__ = ["create_inference_pipeline", "create_pipeline"]
