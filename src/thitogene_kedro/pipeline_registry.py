"""Project pipelines."""

from __future__ import annotations

from kedro.pipeline import Pipeline

from thitogene_kedro.pipelines import (
    clustering,
    evaluation,
    graph_building,
    inference,
    patching,
    preprocessing,
    training,
)
from thitogene_kedro.pipelines.training.planning import fold_plan_or_error


def register_pipelines() -> dict[str, Pipeline]:
    """Register the project's pipelines.

    ``training`` includes the data pipelines it needs, so ``kedro run --pipelines training`` works
    on a fresh clone; ``--namespaces fold_<id>`` runs one fold alone (on existing data outputs).
    ``evaluation``, ``clustering`` and ``reporting`` read what training stored. ``__default__``
    runs all of these; ``inference`` (a new slide with a registered model) runs on request. The folds are planned once here, from the active configuration.
    """
    folds = fold_plan_or_error()
    data = {
        "preprocessing": preprocessing.create_pipeline(),
        "patching": patching.create_pipeline(),
        "graph_building": graph_building.create_pipeline(),
    }
    pipelines = {
        **data,
        "training": sum(data.values(), Pipeline([])) + training.create_pipeline(folds=folds),
        "evaluation": evaluation.create_pipeline(folds=folds),
        "clustering": clustering.create_pipeline(folds=folds),
        "reporting": evaluation.create_reporting_pipeline(),
        "inference": inference.create_pipeline(),
    }
    pipelines["__default__"] = (
        pipelines["training"] + pipelines["evaluation"] + pipelines["clustering"] + pipelines["reporting"]
    )
    return pipelines
