"""Kedro sessions of the real project configuration, in a temporary copy of the project folder."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from kedro.validation.exceptions import ParameterValidationError

from tests.conftest import GENE_LIST_785, HER2ST_REAL, kedro_session

pytestmark = pytest.mark.integration

HELD_OUT = ["SYN_A1", "SYN_B1"]  # one section of each synthetic patient


def test_default_run_on_synthetic_demo(project_copy, monkeypatch):
    """``kedro run`` with the shipped defaults (model, 60 epochs, data, evaluation, clustering, report)
    on two of the demo's four folds, one per patient, and the final model: the suite's largest cost
    (two more folds would add 40 % to it and test nothing new; `make run` trains all four)."""
    with kedro_session(project_copy, runtime_params={"training": {"cv": {"folds": HELD_OUT}}}) as session:
        session.run()
    data = project_copy / "data"
    all_sections = sorted(p.stem for p in (data / "03_primary" / "sections").glob("*.h5ad"))
    assert all_sections == ["SYN_A1", "SYN_A2", "SYN_B1", "SYN_B2"]
    sections = HELD_OUT
    assert sorted(p.stem for p in (data / "04_feature" / "patches").glob("*.npz")) == all_sections
    assert sorted(p.stem for p in (data / "04_feature" / "spot_graphs").glob("*.npz")) == all_sections
    stored = np.load(data / "04_feature" / "patches" / "SYN_A1.npz")
    patches = stored["patches"]
    graph = np.load(data / "04_feature" / "spot_graphs" / "SYN_A1.npz")
    assert stored["spot_ids"].tolist() == graph["spot_ids"].tolist()  # joined by id in training
    assert patches.dtype == np.uint8 and patches.shape[1:] == (112, 112, 3)
    report = pd.read_csv(data / "08_reporting" / "preprocessing_report.csv")
    assert (report["source"] == "synthetic").all()
    runs = mlflow.search_runs(experiment_names=["thitogene_kedro"])
    assert len(runs) == 1 and runs["status"].iloc[0] == "FINISHED"
    assert runs["tags.mlflow.runName"].iloc[0] == "local·__default__"
    cv = pd.read_csv(data / "08_reporting" / "cv_summary.csv")
    assert sorted(cv["section"]) == sections
    # Held-out PCC well above chance (0): the synthetic expression follows the image.
    assert cv["pcc_mean"].mean() > 0.2, cv
    assert runs["metrics.cv.pcc_mean_over_sections"].iloc[0] == pytest.approx(cv["pcc_mean"].mean())
    # evaluation, clustering, figures and the report
    summary = pd.read_csv(data / "08_reporting" / "evaluation" / "summary.csv").set_index("score")
    assert summary.loc["pcc_mean", "mean"] == pytest.approx(cv["pcc_mean"].mean())
    clustering = pd.read_csv(data / "08_reporting" / "clustering" / "scores.csv").set_index(["section", "source"])
    assert clustering.xs("observed", level="source")["ari"].notna().all()  # every section's own counts
    predicted = clustering.xs("predicted", level="source")
    assert predicted.loc[sections, "ari"].notna().all()
    unpredicted = sorted(set(all_sections) - set(sections))
    assert predicted.loc[unpredicted, "ari"].isna().all() and predicted.loc[unpredicted, "note"].str.startswith(
        "no held-out prediction").all()  # fmt: skip
    figures = data / "08_reporting" / "figures"
    pngs = [figures / f"{n}.png" for n in ("pcc_boxplot", "model_bars", "training_curves")]
    pngs += [figures / "spatial_maps" / f"{s}_top_genes.png" for s in sections]
    pngs += [figures / "cluster_maps" / f"{s}_clusters.png" for s in all_sections]
    assert all(p.stat().st_size > 10_000 for p in pngs)
    report = (data / "08_reporting" / "report.html").read_text()
    assert report.count("<img") == len(pngs) and "Held-out sections" in report
    artifacts = {a.path for a in mlflow.MlflowClient().list_artifacts(runs["run_id"].iloc[0], "figures")}
    assert {"figures/pcc_boxplot.png", "figures/spatial_maps", "figures/cluster_maps"} <= artifacts


def test_invalid_parameter_stops_the_run_naming_the_key(project_copy):
    with kedro_session(project_copy, plan=False, runtime_params={"patching": {"patch_size": 0}}) as session:
        with pytest.raises(ParameterValidationError, match="patch_size"):
            session.run(pipeline_names=["patching"])


@pytest.mark.skipif(not HER2ST_REAL.is_dir(), reason="real her2st copy (../shared/data/her2st) not present")
def test_her2st_environment_reads_her2st_dir(project_copy, monkeypatch):
    monkeypatch.setenv("HER2ST_DIR", str(HER2ST_REAL))
    monkeypatch.setenv("HER2ST_GENE_LIST", str(GENE_LIST_785))
    params = {"preprocessing": {"sections": "C3 A2"}}
    with kedro_session(project_copy, plan=False, env="her2st", runtime_params=params) as session:
        session.run(pipeline_names=["preprocessing", "patching", "graph_building"])
    report = pd.read_csv(project_copy / "data" / "08_reporting" / "patching_report.csv").set_index("section")
    assert report.loc["C3", "n_spots"] == 180 and report.loc["A2", "status"] == "skipped: no image"
    genes = pd.read_csv(project_copy / "data" / "03_primary" / "selected_genes.csv")
    assert len(genes) == 785


def test_kedro_viz_build_shows_pipelines_and_layers(project_copy):
    """``kedro viz build`` renders the project's pipelines with their catalog layers."""
    kedro = Path(sys.executable).with_name("kedro")
    env = {**os.environ, "KEDRO_DISABLE_TELEMETRY": "true"}
    subprocess.run(
        [str(kedro), "viz", "build"], cwd=project_copy, env=env, check=True, capture_output=True, timeout=300
    )
    main = json.loads((project_copy / "build" / "api" / "main").read_text())
    assert main["layers"] == [
        "raw",
        "primary",
        "feature",
        "model_input",
        "models",
        "model_output",
        "reporting",
        "registry",
    ]
    assert {p["id"] for p in main["pipelines"]} >= {
        "__default__",
        "preprocessing",
        "patching",
        "graph_building",
        "training",
    }
    assert {"fold_SYN_A1", "fold_SYN_A2", "fold_SYN_B1", "fold_SYN_B2", "final"} <= set(main["modular_pipelines"])
