"""Nodes of the training pipeline: folds, per-fold genes, training, held-out prediction, registration."""

from __future__ import annotations

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

from thitogene_kedro.datasets.checkpoint_dataset import CheckpointStore
from thitogene_kedro.metrics import section_metrics
from thitogene_kedro.models import build_model, model_config, resolve_device
from thitogene_kedro.models.pyfunc import SpotExpressionPredictor
from thitogene_kedro.models.runtime import Precision
from thitogene_kedro.pipelines.graph_building.params import GraphBuildingParams
from thitogene_kedro.pipelines.preprocessing.nodes import (
    choose_sections,
    gene_selection_method,
    genes_from_statistics,
)
from thitogene_kedro.pipelines.preprocessing.params import PreprocessingParams
from thitogene_kedro.pipelines.training.examples import fold_examples
from thitogene_kedro.pipelines.training.folds import FINAL, Fold, plan_folds
from thitogene_kedro.pipelines.training.loop import LoopSettings, fit, predict, seed_everything
from thitogene_kedro.pipelines.training.params import TrainingParams

logger = logging.getLogger(__name__)

# settings that change where and how fast a fold trains, never its result: left out of the checkpoint fingerprint
_COST_ONLY_SETTINGS = {
    "checkpoint_every", "progress_every", "device", "cv", "registry", "data_on_device", "reuse_freed_host_memory",
}  # fmt: skip

Loaders = Mapping[str, Callable[[], Any]]


def fold_plan(
    raw_sections: Loaders, raw_images: Loaders, preprocessing: PreprocessingParams, training: TrainingParams
) -> list[Fold]:
    """Every fold of this configuration (the final model last).

    Only configured sections with an image train or are tested; the others still inform gene
    selection (``counts_only``).
    """
    training = TrainingParams.model_validate(training)
    chosen = list(choose_sections(raw_sections, PreprocessingParams.model_validate(preprocessing)))
    sections = [s for s in chosen if s in raw_images]
    counts_only = [s for s in chosen if s not in raw_images]
    if counts_only:
        logger.info("Cross-validation leaves out %d section(s) without an image: %s", len(counts_only), counts_only)
    source = getattr(raw_sections, "source", None)
    patients = {s: (source.patient_of(s) if source is not None else s) for s in chosen}
    return plan_folds(sections, patients, training.cv, training.seed, counts_only)


def define_fold(
    raw_sections: Loaders,
    raw_images: Loaders,
    preprocessing: PreprocessingParams,
    training: TrainingParams,
    fold_name: str,
) -> dict[str, Any]:
    """The sections of fold ``fold_name`` (test, train, validation), checked for leakage.

    Raises:
        ValueError: the fold is not in the current plan (the configuration changed since the
            pipeline was built), or a test section or patient appears on the training side.
    """
    plan = {f.name: f for f in fold_plan(raw_sections, raw_images, preprocessing, training)}
    if fold_name not in plan:
        raise ValueError(f"fold {fold_name} is not in the current fold plan {sorted(plan)}")
    fold = plan[fold_name]
    fitting = set(fold.train) | set(fold.validation)
    if set(fold.unseen) & fitting:
        raise ValueError(f"fold {fold_name}: unseen sections {sorted(set(fold.unseen) & fitting)} also train")
    logger.info(
        "%s: test %s, train %d sections, validation %s",
        fold.name,
        list(fold.test),
        len(fold.train),
        list(fold.validation),
    )
    return fold.to_dict()


def select_fold_genes(
    statistics: Mapping[str, Mapping[str, Any]],
    gene_list: list[str] | None,
    fold: Mapping[str, Any],
    preprocessing: PreprocessingParams,
) -> pd.DataFrame:
    """The fold's target genes, from every configured section except the fold's ``unseen`` ones."""
    preprocessing = PreprocessingParams.model_validate(preprocessing)
    fold = Fold.from_dict(fold)
    if gene_selection_method(gene_list, preprocessing) == "file":
        return pd.DataFrame({"gene": list(gene_list), "method": "file"})
    allowed = [s for s in statistics if s not in set(fold.unseen)]
    missing = [s for s in [*fold.train, *fold.validation] if s not in statistics]
    if missing:
        raise ValueError(f"{fold.name}: no gene statistics for training sections {missing}; rerun gene_statistics")
    logger.info("%s: selecting genes on %d section(s), leaving out %s", fold.name, len(allowed), list(fold.unseen))
    return genes_from_statistics(statistics, allowed, preprocessing)


def resolve_precision(precision: str, device: torch.device) -> Precision:
    """``auto``: bf16 autocast on a CUDA device that supports it, else fp32."""
    if precision != "auto":
        return precision
    return "bf16" if device.type == "cuda" and torch.cuda.is_bf16_supported() else "fp32"


def _fingerprint(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def train_fold(
    fold: Mapping[str, Any],
    genes: pd.DataFrame,
    raw_sections: Loaders,
    section_patches: Loaders,
    spot_graphs: Loaders,
    checkpoints: CheckpointStore,
    preprocessing: PreprocessingParams,
    training: TrainingParams,
) -> tuple[dict[str, Any], pd.DataFrame, dict[str, list[dict[str, float]]], dict[str, Any]]:
    """Train one fold's model on its training sections (resuming from ``checkpoints``).

    Returns:
        ``(model, history, metrics, summary)``: the model artifact (configuration, genes, weights),
        the per-epoch table, the same as MLflow metric histories, and a run summary (device,
        precision, timing, peak GPU memory, early stopping, resume).
    """
    preprocessing = PreprocessingParams.model_validate(preprocessing)
    training = TrainingParams.model_validate(training)
    fold = Fold.from_dict(fold)
    gene_names = genes["gene"].astype(str).tolist()
    device = resolve_device(training.device)
    precision = resolve_precision(training.precision, device)
    started = time.perf_counter()

    def load(sections: tuple[str, ...]) -> list:
        examples = fold_examples(
            sections, raw_sections, section_patches, spot_graphs, gene_names, preprocessing.normalisation
        )
        return [prepared.example for prepared in examples]

    train, validation = load(fold.train), load(fold.validation)
    spec = training.model.model_dump()
    config = model_config(spec, len(gene_names))
    seed_everything(training.seed)
    model = build_model(spec, len(gene_names))
    n_parameters = int(sum(p.numel() for p in model.parameters()))
    settings = LoopSettings(
        epochs=training.epochs, lr=training.optimiser.lr, weight_decay=training.optimiser.weight_decay,
        optimiser=training.optimiser.name, step_in_backward=training.optimiser.step_in_backward,
        sections_per_step=training.sections_per_step, seed=training.seed,
        device=device, precision=precision, checkpoint_every=training.checkpoint_every,
        progress_every=training.progress_every, patience=training.early_stopping.patience,
        min_delta=training.early_stopping.min_delta, label=fold.name,
        data_on_device=device.type == "cuda" if training.data_on_device == "auto" else training.data_on_device,
        reuse_freed_host_memory=training.reuse_freed_host_memory,
    )  # fmt: skip
    fingerprint = _fingerprint(
        fold.to_dict(), gene_names, config.model_dump(), preprocessing.normalisation.model_dump(),
        training.model_dump(exclude=_COST_ONLY_SETTINGS),
        {name: list(tensor.shape) for name, tensor in model.state_dict().items()},  # a new layout starts afresh
    )  # fmt: skip
    logger.info(
        "%s: training %s (%s, %d parameters) on %d sections, %d spots, %d genes; device %s, %s",
        fold.name, config.name, training.model.preset, n_parameters,
        len(train), sum(len(e.patches) for e in train), len(gene_names), device, precision,
    )  # fmt: skip
    result = fit(model, train, validation, settings, checkpoints, fingerprint)
    history = pd.DataFrame(result.history)
    history.insert(0, "fold", fold.name)
    metrics = {
        key: [{"step": int(r["epoch"]), "value": float(r[key])} for r in result.history if key in r]
        for key in ("train_loss", "validation_loss", "seconds", "spots_per_second")
    }
    if result.peak_gpu_memory_mib is not None:
        metrics["peak_gpu_memory_mib"] = [{"step": int(history["epoch"].max()), "value": result.peak_gpu_memory_mib}]
    summary = {
        "fold": fold.to_dict(),
        "model": spec,
        "parameters": n_parameters,
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "precision": precision,
        "epochs_run": int(history["epoch"].max()),
        "kept_epoch": int(result.best_epoch),
        "stopped_early": result.stopped_early,
        "resumed_from_epoch": result.resumed_from,
        "mean_epoch_seconds": float(history["seconds"].mean()),
        "mean_spots_per_second": float(history["spots_per_second"].mean()),
        "peak_gpu_memory_mib": result.peak_gpu_memory_mib,
        "wall_seconds": time.perf_counter() - started,
    }
    training_means = np.concatenate([e.targets for e in train]).mean(axis=0)
    artifact = {
        "model": spec,
        "genes": gene_names,
        "training_gene_means": [float(v) for v in training_means],  # ranks highly expressed genes, training-side
        "state_dict": result.state_dict,
        "fold": fold.to_dict(),
        "normalisation": preprocessing.normalisation.model_dump(),
    }
    return artifact, history, {k: v for k, v in metrics.items() if v}, summary


def predict_fold(
    model: Mapping[str, Any],
    fold: Mapping[str, Any],
    raw_sections: Loaders,
    section_patches: Loaders,
    spot_graphs: Loaders,
    preprocessing: PreprocessingParams,
    training: TrainingParams,
) -> tuple[ad.AnnData, pd.DataFrame, dict[str, dict[str, float]]]:
    """Predict the fold's test sections with its model; PCC per gene against the observed targets.

    Returns:
        ``(predictions, scores, metrics)``: one AnnData of test spots (``X`` predictions,
        ``layers['observed']`` targets), one score row per test section, and the MLflow metrics.
    """
    preprocessing = PreprocessingParams.model_validate(preprocessing)
    training = TrainingParams.model_validate(training)
    fold = Fold.from_dict(fold)
    genes = list(model["genes"])
    net = build_model(model["model"], len(genes))
    net.load_state_dict(model["state_dict"])
    device = resolve_device(training.device)
    examples = fold_examples(
        fold.test, raw_sections, section_patches, spot_graphs, genes, preprocessing.normalisation, missing_genes="zero"
    )
    predictions = predict(
        net, [p.example for p in examples], device, resolve_precision(training.precision, device),
        reuse_host_memory=training.reuse_freed_host_memory,
    )  # fmt: skip
    parts, rows = [], []
    for (example, spot_ids, spatial), prediction in zip(examples, predictions, strict=True):
        rows.append(
            {"fold": fold.name, "section": example.section_id, "spots": len(spot_ids), "genes": len(genes)}
            | section_metrics(prediction, example.targets)
        )
        part = ad.AnnData(
            X=prediction.astype(np.float32),
            obs=pd.DataFrame({"section": example.section_id}, index=pd.Index(spot_ids, name="spot")),
            var=pd.DataFrame(index=pd.Index(genes, name="gene")),
            layers={"observed": example.targets},
            obsm={"spatial": spatial},
        )
        part.obs_names = [f"{example.section_id}:{s}" for s in spot_ids]
        parts.append(part)
    predictions_adata = ad.concat(parts, merge="same") if len(parts) > 1 else parts[0]
    predictions_adata.uns["fold"] = fold.to_dict()
    scores = pd.DataFrame(rows)
    for row in rows:
        logger.info(
            "%s: held-out %s PCC mean %.3f (median %.3f) over %d genes",
            fold.name,
            row["section"],
            row["pcc_mean"],
            row["pcc_median"],
            row["genes"],
        )
    metrics = {
        f"{row['section']}.{key}": {"value": row[key], "step": 0}
        for row in rows
        for key in ("pcc_mean", "pcc_median", "pcc_mean_nan_dropped", "mse", "mae")
    }
    return predictions_adata, scores, metrics


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
    model: Mapping[str, Any],
    cv_summary: pd.DataFrame,  # noqa: ARG001 - an input only so that registration runs after every fold
    raw_sections: Loaders,
    graph_building: GraphBuildingParams,
    training: TrainingParams,
) -> SpotExpressionPredictor:
    """The final model as a pyfunc, named ``<data source>_<model>`` unless ``training.registry.name`` is set."""
    if Fold.from_dict(model["fold"]).name != FINAL:
        raise ValueError("only the final model (trained on every section) is registered")
    return _predictor(model, raw_sections, graph_building, training)


def package_fold_model(
    model: Mapping[str, Any], raw_sections: Loaders, graph_building: GraphBuildingParams, training: TrainingParams
) -> SpotExpressionPredictor:
    """A fold's model as a pyfunc registered under ``<name>_folds`` (``training.registry.register_folds``)."""
    return _predictor(model, raw_sections, graph_building, training, suffix="_folds")


def _predictor(
    model: Mapping[str, Any],
    raw_sections: Loaders,
    graph_building: GraphBuildingParams,
    training: TrainingParams,
    suffix: str = "",
) -> SpotExpressionPredictor:
    training = TrainingParams.model_validate(training)
    graph = GraphBuildingParams.model_validate(graph_building)
    source = getattr(getattr(raw_sections, "source", None), "source", "data")
    name = (training.registry.name or f"{source}_{training.model.name}") + suffix
    return SpotExpressionPredictor(
        dict(model),
        registered_name=name,
        graph={"k": graph.k, "self_loops": graph.self_loops, "symmetric": graph.symmetric},
    )
