"""Project pipelines."""

from __future__ import annotations

from kedro.pipeline import Pipeline

from thitogene_kedro.pipelines import graph_building, patching, preprocessing, training


def register_pipelines() -> dict[str, Pipeline]:
    """Register the project's pipelines.

    ``training`` includes the data pipelines it needs, so ``kedro run --pipelines training`` works
    on a fresh clone; ``--namespaces fold_<id>`` runs one fold alone (on existing data outputs).
    ``__default__`` runs everything. The pipelines are listed explicitly (not discovered) because
    ``training`` is composed from the others whichever pipeline the command line asks for.
    """
    data = {
        "preprocessing": preprocessing.create_pipeline(),
        "patching": patching.create_pipeline(),
        "graph_building": graph_building.create_pipeline(),
    }
    folds = training.create_pipeline()
    pipelines = {**data, "training": sum(data.values(), Pipeline([])) + folds}
    pipelines["__default__"] = pipelines["training"]
    return pipelines
