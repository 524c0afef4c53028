"""The evaluation pipeline (and the reporting step that closes a run)."""

from thitogene_kedro.pipelines.evaluation.pipeline import create_pipeline, create_reporting_pipeline

__all__ = ["create_pipeline", "create_reporting_pipeline"]
