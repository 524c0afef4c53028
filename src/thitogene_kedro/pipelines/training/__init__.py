"""The training pipeline."""

from thitogene_kedro.pipelines.training.pipeline import create_pipeline

__all__ = ["create_pipeline"]
