"""Project pipelines."""

from __future__ import annotations

from kedro.pipeline import Pipeline

from thitogene_kedro.pipelines import (
    clustering,
    evaluation,
    features,
    graph_building,
    inference,
    patching,
    preprocessing,
    spatialdata_export,
    training,
)
from thitogene_kedro.pipelines.registered_folds import registered_plan


def register_pipelines() -> dict[str, Pipeline]:
    """Register the project's pipelines.

    ``training`` includes the data pipelines it needs, so ``kedro run --pipelines training`` works
    on a fresh clone; ``--namespaces fold_<id>`` runs one fold alone (on existing data outputs).
    ``evaluation``, ``clustering`` and ``reporting`` read what training stored. ``__default__``
    runs all of these; ``inference`` (a new slide with a registered model) and ``features`` (per-spot embeddings by a frozen
    foundation encoder) run on request, as do ``spatialdata``
    and ``spatialdata_inference`` (held-out or inference predictions as SpatialData zarr stores; optional extra). The fold namespaces come from the ``folds`` parameters (``kedro folds plan``);
    no data is read here.
    """
    plan = registered_plan()
    folds = plan.folds if plan is not None else ()
    register_folds = bool(plan is not None and _register_folds())
    data = {
        "preprocessing": preprocessing.create_pipeline(),
        "patching": patching.create_pipeline(),
        "graph_building": graph_building.create_pipeline(),
    }
    pipelines = {
        **data,
        "training": sum(data.values(), Pipeline([]))
        + training.create_pipeline(folds=folds, register_folds=register_folds),
        "evaluation": evaluation.create_pipeline(folds=folds),
        "clustering": clustering.create_pipeline(folds=folds),
        "reporting": evaluation.create_reporting_pipeline(),
        "inference": inference.create_pipeline(),
        "features": data["preprocessing"] + features.create_pipeline(),
        "feature_training": data["preprocessing"]
        + data["graph_building"]
        + features.create_pipeline()
        + training.create_pipeline(folds=folds, register_folds=register_folds, spots="features"),
        "spatialdata": spatialdata_export.create_pipeline(folds=folds),
        "spatialdata_inference": spatialdata_export.create_inference_pipeline(),
    }
    pipelines["__default__"] = (
        pipelines["training"] + pipelines["evaluation"] + pipelines["clustering"] + pipelines["reporting"]
    )
    return pipelines


def _register_folds() -> bool:
    from thitogene_kedro.pipelines.registered_folds import registered_parameter  # noqa: PLC0415

    return bool(registered_parameter("training", "registry", "register_folds"))
