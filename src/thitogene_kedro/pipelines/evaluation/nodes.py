"""Nodes of the evaluation pipeline: per-section and per-gene scores, aggregates, model comparison."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any

import anndata as ad
import numpy as np
import pandas as pd

from thitogene_kedro.datasets.earlier_runs_dataset import EarlierRuns
from thitogene_kedro.metrics import paired_comparison, pearson_with_p
from thitogene_kedro.pipelines.evaluation.params import EvaluationParams
from thitogene_kedro.pipelines.training.params import TrainingParams

logger = logging.getLogger(__name__)


def model_label(training: TrainingParams) -> str:
    """``name/preset`` plus the overrides, e.g. ``thitogene/small{"components":{"gat":false}}``."""
    training = TrainingParams.model_validate(training)
    spec = training.model
    overrides = json.dumps(spec.overrides, sort_keys=True, separators=(",", ":")) if spec.overrides else ""
    return f"{spec.name}/{spec.preset}{overrides}"


def summarise_evaluation(
    evaluation: EvaluationParams, training: TrainingParams, *tables: pd.DataFrame
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, dict[str, dict[str, float]]]:
    """All folds together: ``tables`` are each fold's ``(sections, genes)`` outputs, in that order.

    Returns:
        ``(sections, summary, genes, metrics)``: every held-out section's scores (with the model
        label), the mean ± standard deviation over sections of each score, per gene the mean PCC
        and mean -log10 p across sections (ranked by the latter, as the paper's Figure 4), and the
        headline numbers as MLflow metrics.
    """
    evaluation = EvaluationParams.model_validate(evaluation)
    sections = pd.concat(tables[0::2], ignore_index=True)
    genes = pd.concat(tables[1::2], ignore_index=True)
    sections.insert(0, "model", model_label(training))
    columns = ["pcc_mean", "pcc_median", "pcc_mean_nan_dropped", "pcc_top_expressed", "mse", "mae", "genes_nan_pcc"]
    summary = pd.DataFrame(
        {
            "score": columns,
            "mean": [float(sections[c].mean()) for c in columns],
            "sd": [float(sections[c].std(ddof=1)) if len(sections) > 1 else float("nan") for c in columns],
            "median": [float(sections[c].median()) for c in columns],
            "sections": len(sections),
        }
    )
    per_gene = (
        genes.assign(pcc_as_zero=genes["pcc"].fillna(0.0))
        .groupby("gene", sort=False)
        .agg(
            pcc_mean=("pcc_as_zero", "mean"),
            neg_log10_p_mean=("neg_log10_p", "mean"),
            sections=("section", "nunique"),
            sections_nan_pcc=("pcc", lambda s: int(s.isna().sum())),
            observed_mean=("observed_mean", "mean"),
        )
        .sort_values("neg_log10_p_mean", ascending=False)
        .reset_index()
    )
    per_gene.insert(0, "rank", np.arange(1, len(per_gene) + 1))
    metrics = {
        f"{row.score}_{stat}": {"value": float(getattr(row, stat)), "step": 0}
        for row in summary.itertuples()
        for stat in ("mean", "sd")
        if np.isfinite(getattr(row, stat))
    }
    top = per_gene.head(evaluation.top_genes)["gene"].tolist()
    logger.info(
        "Evaluation over %d held-out section(s): PCC %.3f ± %.3f (reference nan-dropping mean %.3f); top genes %s",
        len(sections), summary.loc[0, "mean"], summary.loc[0, "sd"], summary.loc[2, "mean"], top[:5],
    )  # fmt: skip
    return sections, summary, per_gene, metrics


def earlier_results(earlier: EarlierRuns, compare: list[str] | str) -> pd.DataFrame:
    """Per-section scores of the earlier runs to compare with (see ``ComparisonParams``)."""
    tables = earlier.tables
    if compare == "none" or tables.empty or (compare == "same_protocol" and earlier.current is None):
        return pd.DataFrame()
    if compare != "same_protocol":
        return tables[tables["run_id"].isin(list(compare))].reset_index(drop=True)
    protocol = [c for c in tables.columns if c.startswith(("param:", "tag:"))]
    same = (tables[protocol].fillna("") == pd.Series(earlier.current).reindex(protocol).fillna("")).all(axis=1)
    same_protocol = tables[same]
    latest = same_protocol.drop_duplicates("model")["run_id"]  # newest first: the latest run per model configuration
    return same_protocol[same_protocol["run_id"].isin(latest)].reset_index(drop=True)


def compare_models(
    sections: pd.DataFrame, earlier_runs: EarlierRuns, evaluation: EvaluationParams
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """This run's per-section scores next to earlier runs' under the same protocol.

    Returns:
        ``(scores, tests)``: every model's per-section ``pcc_mean`` (long format), and per other
        model the paired difference to this run's model over the shared sections with a
        two-sided Wilcoxon signed-rank test (exact for small samples).
    """
    evaluation = EvaluationParams.model_validate(evaluation)
    current = sections.assign(run_id=earlier_runs.current_run_id or "this run")
    others = earlier_results(earlier_runs, evaluation.compare.runs)
    scores = pd.concat([current, others], ignore_index=True) if not others.empty else current
    scores = scores[["model", "run_id", "fold", "section", "pcc_mean", "pcc_top_expressed", "mse"]]
    this = str(current["model"].iloc[0])
    wide = scores.pivot_table(index="section", columns="model", values="pcc_mean", aggfunc="first")
    rows = []
    for other in [m for m in wide.columns if m != this]:
        paired = wide[[this, other]].dropna()
        result = paired_comparison(paired[this], paired[other])
        result["pcc_mean_model"], result["pcc_mean_versus"] = result.pop("pcc_mean_a"), result.pop("pcc_mean_b")
        rows.append({"model": this, "versus": other, **result})
    tests = pd.DataFrame(
        rows,
        columns=[
            "model",
            "versus",
            "sections",
            "pcc_mean_model",
            "pcc_mean_versus",
            "mean_difference",
            "wins",
            "wilcoxon_statistic",
            "wilcoxon_p",
        ],
    )  # noqa: E501
    if rows:
        logger.info("Compared %s with %d other model(s) section by section", this, len(rows))
    return scores, tests


def plot_model_figures(scores: pd.DataFrame) -> tuple[Any, Any]:
    """PCC box plot per model (Figure 2) and the model/ablation bar chart (Figure 3)."""
    from thitogene_kedro.plotting import model_bars, pcc_boxplot  # noqa: PLC0415

    return pcc_boxplot(scores), model_bars(scores)


def plot_training_curves(*histories: pd.DataFrame) -> Any:
    """Loss per epoch of every fold (the fold name is read from each history's ``fold`` column)."""
    from thitogene_kedro.plotting import training_curves  # noqa: PLC0415

    return training_curves({str(h["fold"].iloc[0]): h for h in histories})


def plot_spatial_maps(
    genes: pd.DataFrame, evaluation: EvaluationParams, *test_predictions: ad.AnnData
) -> dict[str, Any]:
    """Per held-out section, observed vs predicted maps of the top genes (by mean -log10 p), over the
    tissue image the predictions carry (``uns['spatial']``)."""
    from thitogene_kedro.plotting import expression_maps  # noqa: PLC0415

    evaluation = EvaluationParams.model_validate(evaluation)
    top = genes.head(evaluation.map_genes)["gene"].tolist()
    figures = {}
    for adata in test_predictions:
        for section in pd.unique(adata.obs["section"]):
            part = adata[adata.obs["section"] == section, top]
            r, _ = pearson_with_p(np.asarray(part.X), np.asarray(part.layers["observed"]))
            figures[f"{section}_top_genes"] = expression_maps(
                section, part, dict(zip(top, r, strict=True)), evaluation.map_scale, evaluation.map_percentiles
            )
    return figures


REPORT_TABLES = {
    "evaluation_summary": "Summary over held-out sections",
    "evaluation_sections": "Held-out sections",
    "evaluation_genes": "Genes ranked by mean -log10 p",
    "model_comparison": "Comparison with earlier runs (paired by section)",
    "clustering_scores": "Clustering (ARI against the annotation)",
}
REPORT_FIGURES = {
    "pcc_boxplot_plot": "PCC per held-out section",
    "model_bars_plot": "Models and ablations",
    "training_curves_plot": "Training curves",
}
REPORT_FIGURE_FOLDERS = {"spatial_maps": "Spatial maps", "cluster_maps": "Clusters"}


def _flatten(values: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    flat = {}
    for key, given in values.items():
        name = f"{prefix}{key}"
        value = given.model_dump(mode="json") if hasattr(given, "model_dump") else given  # validated parameters
        flat |= _flatten(value, f"{name}.") if isinstance(value, Mapping) and value else {name: str(value)}
    return flat


def report_provenance(run_provenance: Mapping[str, Any], raw_sections: Any) -> dict[str, str]:
    """What the report names as its provenance: the data, the MLflow run, the code, the environment."""
    source = getattr(raw_sections, "source", None)
    code, run = dict(run_provenance.get("code", {})), dict(run_provenance.get("mlflow", {}))
    commit = str(code.get("git_commit", "unknown")) + (" (with local changes)" if code.get("git_dirty") else "")
    found = {
        "data source": getattr(source, "source", "unknown"),
        "data path": str(getattr(source, "path", "")),
        "sections": f"{len(raw_sections)}: {' '.join(sorted(raw_sections))}",
        "data last modified": getattr(raw_sections, "modified", "") or "unknown",
        "MLflow experiment": run.get("experiment_name", "(no MLflow run)"),
        "MLflow run": f"{run.get('run_name', '')} ({run.get('run_id', '')})" if run else "(no MLflow run)",
        "MLflow run link": run.get("run_link", ""),
        "MLflow tracking URI": run.get("tracking_uri", ""),
        "code version": str(code.get("code_version", "")),
        "git commit": commit,
        "Python": str(code.get("python", "")),
        "platform": str(code.get("platform", "")),
        "packages": " ".join(f"{k}=={v}" for k, v in dict(code.get("packages", {})).items()),
        "run started": str(code.get("recorded_utc", "")),
    }
    return {k: v for k, v in found.items() if v != ""}


def write_report(
    training: TrainingParams, run_provenance: dict[str, Any], raw_sections: Any, parameters: dict[str, Any],
    **parts: Any,
) -> str:  # fmt: skip
    """The run's provenance, tables and figures as one self-contained HTML page (``08_reporting/report.html``).

    ``parts`` are the datasets named in :data:`REPORT_TABLES`, :data:`REPORT_FIGURES` and
    :data:`REPORT_FIGURE_FOLDERS` (the node passes each under its dataset name).
    """
    from thitogene_kedro.report import build_report  # noqa: PLC0415

    label = model_label(training)
    provenance = report_provenance(run_provenance, raw_sections)
    source = provenance["data source"]
    tables = {title: parts[name] for name, title in REPORT_TABLES.items()}
    notes = {
        "Summary over held-out sections": (
            "PCC per gene across a section's spots; constant predictions or targets give NaN, counted in "
            "genes_nan_pcc and taken as 0 in pcc_mean; pcc_mean_nan_dropped is the reference's nanmean. "
            "pcc_top_expressed: genes with the highest mean expression in each fold's training sections."
        ),
        "Comparison with earlier runs (paired by section)": "two-sided Wilcoxon signed-rank test of per-section mean PCC",
    }
    flat_parameters = _flatten(parameters)
    compare = flat_parameters.get("evaluation.compare.runs", "same_protocol")
    why_empty = {
        "Comparison with earlier runs (paired by section)": (
            "evaluation.compare.runs is none" if compare == "none" else
            "no earlier finished run of this MLflow experiment has the same data source, sections and "
            "cross-validation scheme (evaluation.compare.runs: same_protocol); run again, or list run ids"
        ),
        "Clustering (ARI against the annotation)": "no configured section carries pathologist labels",
        "Held-out sections": "no fold holds a section out (training.cv)",
    }  # fmt: skip
    figures = {title: parts[name] for name, title in REPORT_FIGURES.items()}
    for name, title in REPORT_FIGURE_FOLDERS.items():
        figures |= {f"{title} {k}": v for k, v in sorted(parts[name].items())}
    synthetic = source == "synthetic"
    title = f"thitogene-kedro run: {label} on {'the SYNTHETIC demo' if synthetic else source + ' data'}"
    banner = (
        "Synthetic data: the demo sections are drawn by the project's generator, not measured on tissue; "
        "its numbers show the pipeline works, not how the model does on real sections."
        if synthetic else ""
    )  # fmt: skip
    return build_report(
        title, tables, figures, notes, provenance=provenance, parameters=flat_parameters,
        searchable=("Genes ranked by mean -log10 p",), why_empty=why_empty, banner=banner,
    )  # fmt: skip
