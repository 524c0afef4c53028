"""The evaluation pipeline: scores per fold, aggregates, comparison with earlier runs, figures, report.

Per fold namespace (``fold_<id>``): ``evaluate_fold`` on the fold's held-out predictions. Then
``summarise_evaluation`` over all folds, ``compare_models`` against earlier MLflow runs of the
same protocol, the figures, and ``write_report`` (which also needs the clustering outputs).
"""

from __future__ import annotations

from kedro.pipeline import Node, Pipeline

from thitogene_kedro.pipelines.evaluation import nodes
from thitogene_kedro.pipelines.training.folds import Fold
from thitogene_kedro.pipelines.training.pipeline import planning_error_pipeline
from thitogene_kedro.pipelines.training.planning import fold_plan_or_error


def create_pipeline(folds: list[Fold] | Exception | None = None, **kwargs) -> Pipeline:
    """The evaluation pipeline for ``folds`` (default: planned from the active configuration)."""
    folds = fold_plan_or_error() if folds is None else folds
    if isinstance(folds, Exception):
        return planning_error_pipeline(folds, "evaluation")
    tested = [f for f in folds if f.test]
    per_fold = sum(
        (
            Pipeline(
                [
                    Node(
                        nodes.evaluate_fold,
                        ["test_predictions", "model", "params:evaluation"],
                        ["evaluation_sections", "evaluation_genes"],
                        name="evaluate_fold",
                    )
                ],
                namespace=f.name,
                parameters={"params:evaluation"},
            )
            for f in tested
        ),
        Pipeline([]),
    )
    fold_tables = [t for f in tested for t in (f"{f.name}.evaluation_sections", f"{f.name}.evaluation_genes")]
    overall = Pipeline(
        [
            Node(
                nodes.summarise_evaluation,
                ["params:evaluation", "params:training", *fold_tables],
                ["evaluation_sections", "evaluation_summary", "evaluation_genes", "evaluation_metrics"],
                name="summarise_evaluation",
            ),
            Node(
                nodes.compare_models,
                ["evaluation_sections", "params:evaluation"],
                ["model_scores", "model_comparison"],
                name="compare_models",
            ),
            Node(
                nodes.plot_model_figures,
                "model_scores",
                ["pcc_boxplot_plot", "model_bars_plot"],
                name="plot_model_figures",
            ),
            Node(
                nodes.plot_training_curves,
                [f"{f.name}.history" for f in folds],
                "training_curves_plot",
                name="plot_training_curves",
            ),
            Node(
                nodes.plot_spatial_maps,
                [
                    "evaluation_genes",
                    "raw_images",
                    "params:evaluation",
                    *[f"{f.name}.test_predictions" for f in tested],
                ],
                "spatial_maps",
                name="plot_spatial_maps",
            ),
        ]
    )
    return per_fold + overall


def create_reporting_pipeline(**kwargs) -> Pipeline:
    """The run's HTML report from the evaluation and clustering outputs."""
    return Pipeline(
        [
            Node(
                nodes.write_report,
                [
                    "evaluation_summary", "evaluation_sections", "evaluation_genes", "model_comparison",
                    "clustering_scores", "pcc_boxplot_plot", "model_bars_plot", "training_curves_plot", "spatial_maps",
                    "cluster_maps", "params:training",
                ],
                "report",
                name="write_report",
            )
        ]
    )  # fmt: skip
