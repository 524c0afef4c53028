"""Features: per-spot embeddings of each section by a frozen foundation encoder, cached per encoder."""

from thitogene_kedro.pipelines.features.pipeline import create_pipeline

__all__ = ["create_pipeline"]
