"""The inference pipeline."""

from thitogene_kedro.pipelines.inference.pipeline import create_pipeline

__all__ = ["create_pipeline"]
