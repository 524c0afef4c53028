"""The patching pipeline."""

from thitogene_kedro.pipelines.patching.pipeline import create_pipeline

__all__ = ["create_pipeline"]
