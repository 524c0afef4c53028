"""Evaluation nodes on hand-made predictions, and the comparison with earlier MLflow runs."""

from __future__ import annotations

import os

import anndata as ad
import mlflow
import numpy as np
import pandas as pd
import pytest
from scipy import stats

from thitogene_kedro.datasets import EarlierRunsDataset
from thitogene_kedro.metrics import score_held_out
from thitogene_kedro.pipelines.evaluation.nodes import compare_models, model_label, summarise_evaluation
from thitogene_kedro.pipelines.evaluation.params import EvaluationParams
from thitogene_kedro.pipelines.training.params import TrainingParams

GENES = ["G1", "G2", "G3"]


def predictions(fold: str, sections: dict[str, tuple[np.ndarray, np.ndarray]]) -> ad.AnnData:
    parts = []
    for section, (predicted, observed) in sections.items():
        part = ad.AnnData(
            X=predicted.astype(np.float32),
            obs=pd.DataFrame({"section": section}, index=[f"{section}:{i}" for i in range(len(predicted))]),
            var=pd.DataFrame(index=GENES),
            layers={"observed": observed.astype(np.float32)},
            obsm={"spatial": np.zeros((len(predicted), 2))},
        )
        parts.append(part)
    out = ad.concat(parts, merge="same")
    out.uns["fold"] = {"name": fold}
    return out


OBSERVED = np.array([[1.0, 0.0, 2.0], [2.0, 0.0, 4.0], [3.0, 0.0, 5.0], [4.0, 0.0, 9.0]])
PREDICTED = np.array([[1.0, 1.0, 1.0], [2.0, 2.0, 1.0], [3.0, 3.0, 1.0], [4.0, 4.0, 1.0]])  # G1 perfect, G2/G3 NaN


def test_held_out_scores_per_section_and_gene():
    means = [0.1, 0.5, 0.9]  # G3, then G2, are the most expressed in training
    sections, genes = score_held_out(predictions("fold_A", {"A": (PREDICTED, OBSERVED)}), means, top_expressed=2)
    row = sections.iloc[0]
    assert (row["section"], row["spots"], row["genes_nan_pcc"]) == ("A", 4, 2)
    assert row["pcc_mean"] == pytest.approx(1 / 3) and row["pcc_mean_nan_dropped"] == pytest.approx(1.0)
    assert row["pcc_top_expressed"] == 0.0  # G3 and G2: both NaN -> 0
    g1 = genes.set_index("gene").loc["G1"]
    assert g1["pcc"] == pytest.approx(1.0) and g1["neg_log10_p"] > 100


def test_summary_and_gene_ranking_over_folds():
    rng = np.random.default_rng(0)
    tables = []
    for fold in ("fold_A", "fold_B", "fold_C"):
        observed = rng.normal(size=(30, 3))
        predicted = observed * [1.0, 0.3, 0.0] + rng.normal(size=(30, 3))
        tables += score_held_out(predictions(fold, {fold[-1]: (predicted, observed)}), [1, 2, 3], top_expressed=50)
    training = TrainingParams(model={"name": "histogene", "preset": "small"})
    sections, summary, genes, metrics = summarise_evaluation(EvaluationParams(), training, *tables)
    assert sections["model"].unique().tolist() == ["histogene/small"] and len(sections) == 3
    pcc = summary.set_index("score").loc["pcc_mean"]
    assert pcc["mean"] == pytest.approx(sections["pcc_mean"].mean()) and pcc["sd"] == pytest.approx(
        sections["pcc_mean"].std()
    )
    assert genes["gene"].tolist()[0] == "G1" and genes["rank"].tolist() == [1, 2, 3]
    assert metrics["pcc_mean_mean"]["value"] == pytest.approx(pcc["mean"])


def test_model_label_shows_overrides():
    training = TrainingParams(
        model={"name": "thitogene", "preset": "small", "overrides": {"components": {"gat": False}}}
    )
    assert model_label(training) == 'thitogene/small{"components":{"gat":false}}'


def test_comparison_pairs_sections_with_an_earlier_run_and_tests_them():
    sections = pd.DataFrame(
        {"section": ["A", "B", "C", "D", "E", "F"], "fold": "f", "pcc_mean": [0.30, 0.25, 0.40, 0.35, 0.28, 0.33]}
    )
    earlier = sections.assign(
        pcc_mean=[0.20, 0.22, 0.30, 0.31, 0.10, 0.30], model="histogene/small", pcc_top_expressed=0.0, mse=1.0
    )
    # this test's own (empty) store: an earlier test in this process may have fixed MLflow's URI
    mlflow.set_tracking_uri(os.environ["MLFLOW_TRACKING_URI"])
    experiment = mlflow.set_experiment("thitogene_kedro")
    with mlflow.start_run(experiment_id=experiment.experiment_id) as old:
        mlflow.set_tag("data_source", "synthetic")
        mlflow.log_text(earlier.to_csv(index=False), "evaluation/sections.csv")
    with mlflow.start_run(experiment_id=experiment.experiment_id) as other:
        mlflow.set_tag("data_source", "her2st")  # another protocol: loaded, never compared
        mlflow.log_text(earlier.assign(model="hist2st/small").to_csv(index=False), "evaluation/sections.csv")
    current = sections.assign(model="thitogene/small", pcc_top_expressed=0.0, mse=1.0)
    with mlflow.start_run(experiment_id=experiment.experiment_id):
        mlflow.set_tag("data_source", "synthetic")
        earlier_runs = EarlierRunsDataset().load()  # the real MLflow store, read by the dataset
    assert set(earlier_runs.tables["run_id"]) == {old.info.run_id, other.info.run_id}
    scores, tests = compare_models(current, earlier_runs, EvaluationParams())
    assert set(scores["model"]) == {"thitogene/small", "histogene/small"}
    row = tests.iloc[0]
    expected = stats.wilcoxon(current["pcc_mean"] - earlier["pcc_mean"])
    assert (row["versus"], row["sections"], row["wins"]) == ("histogene/small", 6, 6)
    assert row["wilcoxon_p"] == pytest.approx(expected.pvalue) and row["mean_difference"] == pytest.approx(0.08)
    assert old.info.run_id in set(scores["run_id"])
    _, none = compare_models(current, earlier_runs, EvaluationParams(compare={"runs": "none"}))
    assert none.empty
