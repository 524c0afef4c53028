"""The training pipeline: one Kedro namespace per fold (``fold_<id>``) and one for the final model.

Per fold: ``define_fold`` → ``select_fold_genes`` (from training sections only) → ``train_fold``
(checkpointed, resumable) → ``predict_fold`` on the held-out sections. Then
``summarise_cross_validation`` over all folds, and ``package_model`` registers the ``final`` model,
last, so a failed fold never leads to a registered version.
"""

from __future__ import annotations

import functools
import logging

from kedro.pipeline import Node, Pipeline

from thitogene_kedro.pipelines.training import nodes
from thitogene_kedro.pipelines.training.folds import FINAL, Fold
from thitogene_kedro.pipelines.training.planning import active_training_params, fold_plan_or_error

logger = logging.getLogger(__name__)


def _bound(func, **kwargs):
    return functools.update_wrapper(functools.partial(func, **kwargs), func)


SHARED_INPUTS = {"raw_sections", "raw_images", "section_patches", "spot_graphs", "gene_statistics", "gene_list"}


def fold_pipeline(fold: Fold, register: bool = False) -> Pipeline:
    """The nodes of one fold in namespace ``fold.name``: its datasets are ``<fold>.fold``, ``<fold>.model``..."""
    data = ["raw_sections", "section_patches", "spot_graphs"]
    params = ["params:preprocessing", "params:training"]
    steps = [
        Node(
            _bound(nodes.define_fold, fold_name=fold.name),
            ["raw_sections", "raw_images", *params],
            "fold",
            name="define_fold",
        ),
        Node(
            nodes.select_fold_genes,
            ["gene_statistics", "gene_list", "fold", "params:preprocessing"],
            "genes",
            name="select_fold_genes",
        ),
        Node(
            nodes.train_fold,
            ["fold", "genes", *data, "checkpoints", *params],
            ["model", "history", "training_metrics", "training_summary"],
            name="train_fold",
        ),
    ]
    if fold.test:
        steps.append(
            Node(
                nodes.predict_fold,
                ["model", "fold", *data, *params],
                ["test_predictions", "test_scores", "test_metrics"],
                name="predict_fold",
            )
        )
        if register:
            steps.append(
                Node(
                    nodes.package_fold_model,
                    ["model", "raw_sections", "params:graph_building", "params:training"],
                    "registered_model",
                    name="register_fold_model",
                )
            )
    used = {name for step in steps for name in step.inputs}
    return Pipeline(
        steps,
        namespace=fold.name,
        inputs=SHARED_INPUTS & used,
        parameters={"params:preprocessing", "params:training", "params:graph_building"} & used,
    )


def planning_error_pipeline(error: Exception, pipeline_name: str) -> Pipeline:
    """A one-node pipeline that fails with the reason the folds could not be planned."""

    def fold_planning_error() -> None:
        raise ValueError(f"the cross-validation folds could not be planned: {error}")

    logger.debug("Folds not planned for %s: %s", pipeline_name, error)
    return Pipeline([Node(fold_planning_error, None, f"{pipeline_name}_plan", name=f"{pipeline_name}_planning_error")])


def create_pipeline(
    folds: list[Fold] | Exception | None = None, register_folds: bool | None = None, **kwargs
) -> Pipeline:
    """The training pipeline for ``folds`` (default: planned from the active configuration);
    ``register_folds`` (default: ``training.registry.register_folds``) adds a registration per fold."""
    folds = fold_plan_or_error() if folds is None else folds
    if isinstance(folds, Exception):
        return planning_error_pipeline(folds, "training")
    register_folds = active_training_params().registry.register_folds if register_folds is None else register_folds
    pipeline = Pipeline([])
    for fold in folds:
        pipeline += fold_pipeline(fold, register=register_folds and bool(fold.test))
    tested = [f for f in folds if f.test]
    pipeline += Pipeline(
        [
            Node(
                nodes.summarise_cross_validation,
                [f"{f.name}.test_scores" for f in tested],
                ["cv_summary", "cv_metrics"],
                name="summarise_cross_validation",
            )
        ]
    )
    if any(f.name == FINAL for f in folds):
        pipeline += Pipeline(
            [
                Node(
                    nodes.package_model,
                    [f"{FINAL}.model", "cv_summary", "raw_sections", "params:graph_building", "params:training"],
                    "registered_model",
                    name="register_final_model",
                )
            ]
        )
    return pipeline
