"""Kedro sessions of the real project configuration, in a temporary copy of the project folder."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from kedro.framework.session import KedroSession
from kedro.framework.startup import bootstrap_project

from tests.conftest import GENE_LIST_785, HER2ST_REAL, PROJECT_ROOT

pytestmark = pytest.mark.integration


@pytest.fixture
def project_copy(tmp_path, monkeypatch) -> Path:
    """A project folder with a copy of conf/ (no conf/local) and pyproject.toml; data/ is written there.

    The package itself is the installed one, so ``src/`` only has to exist.
    """
    shutil.copytree(PROJECT_ROOT / "conf", tmp_path / "conf", ignore=shutil.ignore_patterns("local"))
    (tmp_path / "conf" / "local").mkdir()
    shutil.copy(PROJECT_ROOT / "pyproject.toml", tmp_path)
    (tmp_path / "src").mkdir()
    monkeypatch.chdir(tmp_path)
    bootstrap_project(tmp_path)
    yield tmp_path
    while mlflow.active_run():  # a failed session must not leave its run open for the next test
        mlflow.end_run(status="FAILED")


def _session(folder: Path, **kwargs) -> KedroSession:
    return KedroSession.create(project_path=folder, **kwargs)


def test_default_run_on_synthetic_demo(project_copy, monkeypatch):
    with _session(project_copy) as session:
        session.run()
    data = project_copy / "data"
    sections = sorted(p.stem for p in (data / "03_primary" / "sections").glob("*.h5ad"))
    assert sections == ["SYN_A1", "SYN_A2", "SYN_B1", "SYN_B2"]
    assert sorted(p.stem for p in (data / "04_feature" / "patches").glob("*.npy")) == sections
    assert sorted(p.stem for p in (data / "04_feature" / "spot_graphs").glob("*.npz")) == sections
    patches = np.load(data / "04_feature" / "patches" / "SYN_A1.npy")
    assert patches.dtype == np.uint8 and patches.shape[1:] == (112, 112, 3)
    report = pd.read_csv(data / "08_reporting" / "preprocessing_report.csv")
    assert (report["source"] == "synthetic").all()
    runs = mlflow.search_runs(experiment_names=["thitogene_kedro"])
    assert len(runs) == 1 and runs["status"].iloc[0] == "FINISHED"


def test_invalid_parameter_stops_the_run_naming_the_key(project_copy):
    with _session(project_copy, runtime_params={"patching": {"patch_size": 0}}) as session:
        with pytest.raises(Exception, match="patch_size"):
            session.run(pipeline_names=["patching"])


@pytest.mark.skipif(not HER2ST_REAL.is_dir(), reason="real her2st copy (../shared/data/her2st) not present")
def test_her2st_environment_reads_her2st_dir(project_copy, monkeypatch):
    monkeypatch.setenv("HER2ST_DIR", str(HER2ST_REAL))
    monkeypatch.setenv("HER2ST_GENE_LIST", str(GENE_LIST_785))
    params = {"preprocessing": {"sections": "C3 A2"}}
    with _session(project_copy, env="her2st", runtime_params=params) as session:
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
    assert main["layers"] == ["raw", "primary", "feature", "reporting"]
    assert {p["id"] for p in main["pipelines"]} >= {"__default__", "preprocessing", "patching", "graph_building"}
