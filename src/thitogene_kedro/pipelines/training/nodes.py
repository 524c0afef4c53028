"""Nodes of the training pipeline: the fold, its genes and inputs, training, prediction, scores, registration.

Every node calls the library layer (:mod:`thitogene_kedro.training`, :mod:`thitogene_kedro.processing`,
:mod:`thitogene_kedro.metrics`); the nodes only pick the fold's part of the data and settings.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

import anndata as ad
import numpy as np
import pandas as pd
import torch

from thitogene_kedro.errors import ProjectError
from thitogene_kedro.metrics import score_held_out
from thitogene_kedro.models import resolve_device
from thitogene_kedro.models.pyfunc import SpotExpressionPredictor
from thitogene_kedro.models.runtime import resolve_precision
from thitogene_kedro.pipelines.evaluation.params import EvaluationParams
from thitogene_kedro.pipelines.preprocessing.params import PreprocessingParams
from thitogene_kedro.pipelines.training.params import TrainingParams
from thitogene_kedro.processing.genes import gene_selection_method, genes_from_statistics
from thitogene_kedro.processing.inputs import SectionStores, prepare_sections
from thitogene_kedro.processing.patches import PatchingParams
from thitogene_kedro.processing.spot_graphs import GraphBuildingParams
from thitogene_kedro.provenance import h5ad_safe
from thitogene_kedro.sections.spatial_layout import spot_grid_columns
from thitogene_kedro.training.artefacts import FoldInputs, InputSettings, TrainedModel, network_for
from thitogene_kedro.training.checkpoints import CheckpointStore
from thitogene_kedro.training.epochs import EPOCH_METRICS
from thitogene_kedro.training.folds import FINAL, Fold, FoldPlan
from thitogene_kedro.training.loop import LoopResult, LoopSettings, fit, predict, seed_everything
from thitogene_kedro.training.metric_names import HELD_OUT_SCORES, held_out_key

logger = logging.getLogger(__name__)

# settings that change where and how fast a fold trains, never its result: left out of the checkpoint fingerprint
_COST_ONLY_SETTINGS = {
    "checkpoint_every", "progress_every", "device", "cv", "registry", "data_on_device", "reuse_freed_host_memory",
}  # fmt: skip

Loaders = Mapping[str, Callable[[], Any]]


def input_settings(
    preprocessing: PreprocessingParams,
    patching: PatchingParams,
    graph_building: GraphBuildingParams,
    encoder_identity: dict[str, Any] | None = None,
) -> InputSettings:
    """The settings every fold's inputs are made with; stored with each trained model
    (``encoder_identity``: the frozen encoder of a model on features)."""
    return InputSettings(
        normalisation=PreprocessingParams.model_validate(preprocessing).normalisation,
        patching=PatchingParams.model_validate(patching),
        graph=GraphBuildingParams.model_validate(graph_building),
        encoder=dict(encoder_identity) if encoder_identity else None,
    )


def select_encoder_features(encoder_features: Loaders, encoder_identity: dict[str, Any]) -> dict[str, Callable]:
    """``{section: load}`` of the features of this encoder and these weights (its cache key)."""
    prefix = f"{encoder_identity['key']}/"
    return {key.removeprefix(prefix): load for key, load in encoder_features.items() if key.startswith(prefix)}


def define_fold(folds: FoldPlan, fold_name: str) -> Fold:
    """Fold ``fold_name`` of the plan, checked for leakage.

    Raises:
        KeyError: the fold is not in the plan. ValueError: a test section or patient also trains.
    """
    fold = FoldPlan.model_validate(folds).fold(fold_name)
    fold.check_no_leakage()
    logger.info("%s: test %s, train %d sections, validation %s", fold.name, list(fold.test), len(fold.train),
                list(fold.validation))  # fmt: skip
    return fold


def select_fold_genes(
    statistics: Mapping[str, Mapping[str, Any]],
    gene_list: list[str] | None,
    fold: Fold,
    preprocessing: PreprocessingParams,
) -> pd.DataFrame:
    """The fold's target genes, from every configured section except the fold's ``unseen`` ones."""
    rule = PreprocessingParams.model_validate(preprocessing).gene_selection
    if gene_selection_method(gene_list, rule) == "file":
        return pd.DataFrame({"gene": list(gene_list), "method": "file"})
    allowed = [s for s in statistics if s not in set(fold.unseen)]
    missing = [s for s in [*fold.train, *fold.validation] if s not in statistics]
    if missing:
        raise ValueError(f"{fold.name}: no gene statistics for training sections {missing}; rerun gene_statistics")
    logger.info("%s: selecting genes on %d section(s), leaving out %s", fold.name, len(allowed), list(fold.unseen))
    try:
        return genes_from_statistics(statistics, allowed, rule)
    except ProjectError as error:
        raise ProjectError(f"{fold.name}: {error}") from None


def build_fold_inputs(
    fold: Fold,
    genes: pd.DataFrame,
    raw_sections: Loaders,
    section_patches: Loaders,
    spot_graphs: Loaders,
    settings: InputSettings,
) -> FoldInputs:
    """The fold's model inputs, built once for training, validation and its held-out sections."""
    names = genes["gene"].astype(str).tolist()
    stores = SectionStores(counts=raw_sections, patches=section_patches, graphs=spot_graphs)

    def prepare(sections: tuple[str, ...], missing_genes: str = "error") -> list:
        return prepare_sections(sections, stores, names, settings.normalisation, missing_genes)

    train = prepare(fold.train)
    # the physical size of a training pixel travels with the model (inference matches it)
    settings = settings.model_copy(update={"mpp": float(np.median([p.mpp for p in train]))}) if train else settings
    # held-out sections' genes were chosen without looking at them: genes they lack count as 0
    return FoldInputs(fold, names, settings, train, prepare(fold.validation), prepare(fold.test, "zero"))


def loop_settings(training: TrainingParams, label: str) -> LoopSettings:
    """The training loop's settings from the ``training`` parameters."""
    device = resolve_device(training.device)
    return LoopSettings(
        epochs=training.epochs, lr=training.optimiser.lr, weight_decay=training.optimiser.weight_decay,
        optimiser=training.optimiser.name, step_in_backward=training.optimiser.step_in_backward,
        sections_per_step=training.sections_per_step, seed=training.seed,
        device=device, precision=resolve_precision(training.precision, device),
        checkpoint_every=training.checkpoint_every, progress_every=training.progress_every,
        patience=training.early_stopping.patience, min_delta=training.early_stopping.min_delta, label=label,
        data_on_device=device.type == "cuda" if training.data_on_device == "auto" else training.data_on_device,
        reuse_freed_host_memory=training.reuse_freed_host_memory,
    )  # fmt: skip


def _fingerprint(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _training_records(
    inputs: FoldInputs, result: LoopResult, settings: LoopSettings, n_parameters: int, seconds: float
) -> tuple[pd.DataFrame, dict[str, list[dict[str, float]]], dict[str, Any]]:
    history = pd.DataFrame(result.history)
    history.insert(0, "fold", inputs.fold.name)
    # epochs trained in this run reached MLflow as they ended (EPOCH_LISTENER); the rest come from a checkpoint
    restored = [r for r in result.history if result.reused or r["epoch"] < (result.resumed_from or 0)]
    metrics = {
        key: [{"step": int(r["epoch"]), "value": float(r[key])} for r in restored if key in r] for key in EPOCH_METRICS
    }
    if result.peak_gpu_memory_mib is not None:
        metrics["peak_gpu_memory_mib"] = [{"step": int(history["epoch"].max()), "value": result.peak_gpu_memory_mib}]
    device = settings.device
    summary = {
        "fold": inputs.fold.model_dump(mode="json"),
        "parameters": n_parameters,
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "precision": settings.precision,
        "epochs_run": int(history["epoch"].max()),
        "kept_epoch": int(result.best_epoch),
        "stopped_early": result.stopped_early,
        "reused_finished_fold": result.reused,
        "resumed_from_epoch": None if result.reused else result.resumed_from,
        "mean_epoch_seconds": float(history["seconds"].mean()),
        "mean_spots_per_second": float(history["spots_per_second"].mean()),
        "peak_gpu_memory_mib": result.peak_gpu_memory_mib,
        "wall_seconds": seconds,
    }
    return history, {k: v for k, v in metrics.items() if v}, summary


def train_fold(
    inputs: FoldInputs, checkpoints: CheckpointStore, training: TrainingParams
) -> tuple[TrainedModel, pd.DataFrame, dict[str, list[dict[str, float]]], dict[str, Any]]:
    """Train one fold's model on its training sections (resuming from ``checkpoints``).

    Returns:
        ``(model, history, metrics, summary)``: the trained model, the per-epoch table, the same as
        MLflow metric histories, and a run summary (device, precision, timing, early stopping, resume).
    """
    training = TrainingParams.model_validate(training)
    started = time.perf_counter()
    settings = loop_settings(training, inputs.fold.name)
    train = [p.example for p in inputs.train]
    seed_everything(training.seed)
    network = network_for(training.model, inputs.genes, inputs.settings)
    given = "features" if inputs.settings.encoder else "patches"
    if network.input_kind != given:
        pipeline = "feature_training" if network.input_kind == "features" else "training"
        raise ProjectError(
            f"{inputs.fold.name}: training.model.name={training.model.name} takes {network.input_kind}, this pipeline "
            f"gives {given}; run it with kedro run --pipelines {pipeline}"
        )
    n_parameters = int(sum(p.numel() for p in network.parameters()))
    fingerprint = _fingerprint(
        inputs.fold.model_dump(mode="json"), inputs.genes, network.config.model_dump(),
        inputs.settings.model_dump(mode="json", exclude={"mpp"}), training.model_dump(exclude=_COST_ONLY_SETTINGS),
        {name: list(tensor.shape) for name, tensor in network.state_dict().items()},  # a new layout starts afresh
    )  # fmt: skip
    settings = dataclasses.replace(settings, description=(
        f"{training.model.name} {training.model.preset} ({n_parameters} parameters), {len(train)} sections, "
        f"{sum(e.n_spots for e in train)} spots, {len(inputs.genes)} genes; device {settings.device}, "
        f"{settings.precision}"
    ))  # fmt: skip
    result = fit(network, train, [p.example for p in inputs.validation], settings, checkpoints, fingerprint)
    history, metrics, summary = _training_records(inputs, result, settings, n_parameters, time.perf_counter() - started)
    summary["model"] = training.model.model_dump(mode="json")
    trained = TrainedModel(
        spec=training.model, genes=inputs.genes, fold=inputs.fold, inputs=inputs.settings,
        state_dict=result.state_dict,
        training_gene_means=np.concatenate([e.targets for e in train]).mean(axis=0).tolist(),
    )  # fmt: skip
    return trained, history, metrics, summary


def predict_fold(
    model: TrainedModel,
    inputs: FoldInputs,
    preprocessed_sections: Mapping[str, Callable[[], ad.AnnData]],
    run_provenance: dict[str, Any],
    training: TrainingParams,
) -> ad.AnnData:
    """The fold's held-out sections predicted by its model: ``X`` predictions, ``layers['observed']``
    targets, in the spatial layout scanpy and squidpy read (each section's library, its image where it
    has one, as preprocessing stored it), with the model and run in ``uns['provenance']``."""
    training = TrainingParams.model_validate(training)
    device = resolve_device(training.device)
    predictions = predict(
        model.build(), [p.example for p in inputs.test], device, resolve_precision(training.precision, device),
        reuse_host_memory=training.reuse_freed_host_memory,
    )  # fmt: skip
    parts, libraries = [], {}
    for (example, spot_ids, spatial, _), prediction in zip(inputs.test, predictions, strict=True):
        section = example.section_id
        grid = spot_grid_columns(example.positions[:, 0], example.positions[:, 1], pd.Index(spot_ids))
        part = ad.AnnData(
            X=prediction.astype(np.float32),
            obs=grid.assign(section=section, spot=list(spot_ids), library_id=section),
            var=pd.DataFrame(index=pd.Index(model.genes, name="gene")),
            layers={"observed": example.targets},
            obsm={"spatial": spatial},
        )
        part.obs_names = [f"{section}:{s}" for s in spot_ids]
        parts.append(part)
        stored = preprocessed_sections[section]().uns.get("spatial", {}) if section in preprocessed_sections else {}
        libraries |= {section: stored[section]} if section in stored else {}
    adata = ad.concat(parts, merge="same") if len(parts) > 1 else parts[0]
    adata.uns["fold"] = inputs.fold.model_dump(mode="json")
    adata.uns["source"] = "held-out prediction"
    adata.uns["prediction"] = {  # what X is, unlike the inference predictions
        "clamped_at_zero": False, "n_below_zero": int((np.asarray(adata.X) < 0).sum()),
        "note": "the network's raw output, on which the held-out scores are computed (as in the reference "
                "code); inference clamps at 0 (inference.clamp_at_zero)",
    }  # fmt: skip
    adata.uns["spatial"] = libraries
    adata.uns["provenance"] = h5ad_safe({"model": model.describe(), **run_provenance})
    return adata


def score_fold(
    test_predictions: ad.AnnData, model: TrainedModel, evaluation: EvaluationParams
) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, dict[str, float]]]:
    """The fold's held-out scores, per section and per section × gene, and the MLflow metrics."""
    evaluation = EvaluationParams.model_validate(evaluation)
    sections, genes = score_held_out(test_predictions, model.training_gene_means, evaluation.top_expressed)
    for row in sections.itertuples():
        logger.info("%s: held-out %s PCC mean %.3f (median %.3f) over %d genes",
                    row.fold, row.section, row.pcc_mean, row.pcc_median, row.genes)  # fmt: skip
    metrics = {
        held_out_key(row["section"], key): {"value": row[key], "step": 0}
        for row in sections.to_dict("records")
        for key in HELD_OUT_SCORES
    }
    return sections, genes, metrics


def summarise_cross_validation(*scores: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, dict[str, float]]]:
    """All folds' per-section scores in one table, and the across-fold means as MLflow metrics."""
    table = pd.concat(scores, ignore_index=True)
    metrics = {
        "pcc_mean_over_sections": {"value": float(table["pcc_mean"].mean()), "step": 0},
        "pcc_median_over_sections": {"value": float(table["pcc_mean"].median()), "step": 0},
        "mse_mean_over_sections": {"value": float(table["mse"].mean()), "step": 0},
    }
    logger.info(
        "Cross-validation over %d held-out section(s): mean PCC %.3f (per section: %s)",
        len(table), table["pcc_mean"].mean(), dict(zip(table["section"], table["pcc_mean"].round(3), strict=True)),
    )  # fmt: skip
    return table, metrics


def package_model(
    model: TrainedModel,
    cv_summary: pd.DataFrame,  # noqa: ARG001 - an input only so that registration runs after every fold
    raw_sections: Loaders,
    training: TrainingParams,
) -> SpotExpressionPredictor:
    """The final model as a pyfunc, named ``<data source>_<model>`` (``_<encoder>`` after it for a
    model on frozen features) unless ``training.registry.name`` is set."""
    if model.fold.name != FINAL:
        raise ValueError("only the final model (trained on every section) is registered")
    return _predictor(model, raw_sections, training)


def package_fold_model(model: TrainedModel, raw_sections: Loaders, training: TrainingParams) -> SpotExpressionPredictor:
    """A fold's model as a pyfunc registered under ``<name>_folds`` (``training.registry.register_folds``)."""
    return _predictor(model, raw_sections, training, suffix="_folds")


def _predictor(
    model: TrainedModel, raw_sections: Loaders, training: TrainingParams, suffix: str = ""
) -> SpotExpressionPredictor:
    training = TrainingParams.model_validate(training)
    source = getattr(getattr(raw_sections, "source", None), "source", "data")
    encoder = f"_{model.inputs.encoder['name']}" if model.inputs.encoder else ""
    name = (training.registry.name or f"{source}_{training.model.name}{encoder}") + suffix
    return SpotExpressionPredictor(model, registered_name=name)
