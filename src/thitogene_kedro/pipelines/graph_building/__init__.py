"""The graph building pipeline."""

from thitogene_kedro.pipelines.graph_building.pipeline import create_pipeline

__all__ = ["create_pipeline"]
