"""Reads the configured sections, selects the target genes and normalises the targets."""

from thitogene_kedro.pipelines.preprocessing.pipeline import create_pipeline

__all__ = ["create_pipeline"]
