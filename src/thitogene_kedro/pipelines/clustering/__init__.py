"""The clustering pipeline."""

from thitogene_kedro.pipelines.clustering.pipeline import create_pipeline

__all__ = ["create_pipeline"]
