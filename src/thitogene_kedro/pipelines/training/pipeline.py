"""The training pipeline: one Kedro namespace per fold of the plan (``fold_<id>``) and one for the final model.

Per fold: ``define_fold`` (from ``params:folds``) → ``select_fold_genes`` (training sections only) →
``build_fold_inputs`` (once) → ``train_fold`` (checkpointed, resumable) → ``predict_fold`` →
``score_fold`` on the held-out sections. Then ``summarise_cross_validation`` over all folds, and
``package_model`` registers the ``final`` model, last, so a failed fold never leads to a registered version.
"""

from __future__ import annotations

import functools

from kedro.pipeline import Node, Pipeline

from thitogene_kedro.pipelines.training import nodes
from thitogene_kedro.training.folds import FINAL, Fold

SHARED_INPUTS = {
    "raw_sections",
    "preprocessed_sections",
    "run_provenance",
    "section_patches",
    "encoder_features",
    "encoder_identity",
    "spot_graphs",
    "gene_statistics",
    "gene_list",
}
# What a spot is given as: its patches (the training pipeline) or the features of a frozen encoder
# (feature_training; docs/encoders.md), selected by the encoder's key in each fold's namespace, so a
# fold runs alone (``--namespaces``) as well as with the others.
SPOT_INPUTS = {"patches": "section_patches", "features": "spot_features"}
SHARED_PARAMETERS = {
    "params:folds", "params:preprocessing", "params:patching", "params:graph_building", "params:training",
    "params:evaluation",
}  # fmt: skip


def _bound(func, **kwargs):
    return functools.update_wrapper(functools.partial(func, **kwargs), func)


def _held_out_nodes(register: bool) -> list[Node]:
    steps = [
        Node(
            nodes.predict_fold,
            ["model", "inputs", "preprocessed_sections", "run_provenance", "params:training"],
            "test_predictions",
            name="predict_fold",
        ),
        Node(
            nodes.score_fold,
            ["test_predictions", "model", "params:evaluation"],
            ["test_scores", "test_gene_scores", "test_metrics"],
            name="score_fold",
        ),
    ]
    if register:
        steps.append(
            Node(
                nodes.package_fold_model,
                ["model", "raw_sections", "params:training"],
                "registered_model",
                name="register_fold_model",
            )
        )
    return steps


def fold_pipeline(fold: Fold, register: bool = False, spots: str = "patches") -> Pipeline:
    """The nodes of one fold in namespace ``fold.name``: its datasets are ``<fold>.genes``, ``<fold>.model``...
    ``spots``: ``patches`` or ``features`` (:data:`SPOT_INPUTS`)."""
    encoder = ["encoder_identity"] if spots == "features" else []
    steps = [] if spots == "patches" else [
        Node(nodes.select_encoder_features, ["encoder_features", "encoder_identity"], "spot_features",
             name="select_encoder_features")
    ]  # fmt: skip
    steps += [
        Node(_bound(nodes.define_fold, fold_name=fold.name), "params:folds", "fold", name="define_fold"),
        Node(
            nodes.input_settings,
            ["params:preprocessing", "params:patching", "params:graph_building", *encoder],
            "input_settings",
            name="input_settings",
        ),
        Node(
            nodes.select_fold_genes,
            ["gene_statistics", "gene_list", "fold", "params:preprocessing"],
            "genes",
            name="select_fold_genes",
        ),
        Node(
            nodes.build_fold_inputs,
            ["fold", "genes", "raw_sections", SPOT_INPUTS[spots], "spot_graphs", "input_settings"],
            "inputs",
            name="build_fold_inputs",
        ),
        Node(
            nodes.train_fold,
            ["inputs", "checkpoints", "params:training"],
            ["model", "history", "training_metrics", "training_summary"],
            name="train_fold",
        ),
    ]
    if fold.test:
        steps += _held_out_nodes(register)
    used = {name for step in steps for name in step.inputs}
    return Pipeline(steps, namespace=fold.name, inputs=SHARED_INPUTS & used, parameters=SHARED_PARAMETERS & used)


def create_pipeline(
    folds: list[Fold] | tuple[Fold, ...] = (), register_folds: bool = False, spots: str = "patches", **kwargs
) -> Pipeline:
    """The training pipeline for ``folds``; ``register_folds`` adds a registration per tested fold;
    ``spots: features`` trains the models on frozen-encoder features (after the features pipeline)."""
    pipeline = Pipeline([])
    for fold in folds:
        pipeline += fold_pipeline(fold, register=register_folds and bool(fold.test), spots=spots)
    tested = [f for f in folds if f.test]
    if tested:
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
    if tested and any(f.name == FINAL for f in folds):
        pipeline += Pipeline(
            [
                Node(
                    nodes.package_model,
                    [f"{FINAL}.model", "cv_summary", "raw_sections", "params:training"],
                    "registered_model",
                    name="register_final_model",
                )
            ]
        )
    return pipeline
