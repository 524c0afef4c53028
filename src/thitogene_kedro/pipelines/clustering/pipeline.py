"""The clustering pipeline: annotated sections clustered from observed and held-out predicted expression."""

from __future__ import annotations

from kedro.pipeline import Node, Pipeline

from thitogene_kedro.pipelines.clustering import nodes
from thitogene_kedro.training.folds import Fold


def create_pipeline(folds: list[Fold] | tuple[Fold, ...] = (), **kwargs) -> Pipeline:
    """The clustering pipeline; predicted expression comes from every fold's held-out predictions."""
    predictions = [f"{f.name}.test_predictions" for f in folds if f.test]
    return Pipeline(
        [
            Node(
                nodes.cluster_sections,
                ["preprocessed_sections", "params:clustering", *predictions],
                ["clustering_scores", "clustering_assignments", "clustering_metrics", "clustered_sections"],
                name="cluster_sections",
            ),
            Node(
                nodes.plot_cluster_maps,
                "clustered_sections",
                "cluster_maps",
                name="plot_cluster_maps",
            ),
        ]
    )
