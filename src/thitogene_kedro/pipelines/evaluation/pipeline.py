"""The evaluation pipeline: scores per fold, aggregates, comparison with earlier runs, figures, report.

The folds' held-out scores come from the training pipeline's ``score_fold`` (the one place they
are computed). ``summarise_evaluation`` combines them over all folds, ``compare_models`` against earlier MLflow runs of the
same protocol, the figures, and ``write_report`` (which also needs the clustering outputs).
"""

from __future__ import annotations

from kedro.pipeline import Node, Pipeline

from thitogene_kedro.pipelines.evaluation import nodes
from thitogene_kedro.training.folds import Fold


def create_pipeline(folds: list[Fold] | tuple[Fold, ...] = (), **kwargs) -> Pipeline:
    """The evaluation pipeline for ``folds``."""
    tested = [f for f in folds if f.test]
    if not tested:
        return Pipeline([])
    fold_tables = [t for f in tested for t in (f"{f.name}.test_scores", f"{f.name}.test_gene_scores")]
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
                ["evaluation_sections", "earlier_runs", "params:evaluation"],
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
                    "params:evaluation",
                    *[f"{f.name}.test_predictions" for f in tested],
                ],
                "spatial_maps",
                name="plot_spatial_maps",
            ),
        ]
    )
    return overall


def create_reporting_pipeline(**kwargs) -> Pipeline:
    """The run's HTML report from the evaluation and clustering outputs."""
    return Pipeline(
        [
            Node(
                nodes.write_report,
                {
                    "training": "params:training",
                    "run_provenance": "run_provenance",
                    "raw_sections": "raw_sections",
                    "parameters": "parameters",
                    **{name: name for name in [*nodes.REPORT_TABLES, *nodes.REPORT_FIGURES, *nodes.REPORT_FIGURE_FOLDERS]},
                },
                "report",
                name="write_report",
            )
        ]
    )  # fmt: skip
