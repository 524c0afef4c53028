"""The clustering pipeline: annotated sections clustered from observed and held-out predicted expression."""

from __future__ import annotations

from kedro.pipeline import Node, Pipeline

from thitogene_kedro.pipelines.clustering import nodes
from thitogene_kedro.pipelines.training.folds import Fold
from thitogene_kedro.pipelines.training.pipeline import planning_error_pipeline
from thitogene_kedro.pipelines.training.planning import fold_plan_or_error


def create_pipeline(folds: list[Fold] | Exception | None = None, **kwargs) -> Pipeline:
    """The clustering pipeline; predicted expression comes from every fold's held-out predictions."""
    folds = fold_plan_or_error() if folds is None else folds
    if isinstance(folds, Exception):
        return planning_error_pipeline(folds, "clustering")
    predictions = [f"{f.name}.test_predictions" for f in folds if f.test]
    return Pipeline(
        [
            Node(
                nodes.cluster_sections,
                ["preprocessed_sections", "params:clustering", *predictions],
                ["clustering_scores", "clustering_assignments", "clustering_metrics"],
                name="cluster_sections",
            ),
            Node(
                nodes.plot_cluster_maps,
                ["clustering_assignments", "raw_images", "params:clustering"],
                "cluster_maps",
                name="plot_cluster_maps",
            ),
        ]
    )
