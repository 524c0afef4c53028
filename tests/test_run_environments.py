"""Kedro sessions of the real project configuration that need no trained model: parameter
validation and the her2st and hest environments (beside tests/test_run.py, so the two workers share the load)."""

from __future__ import annotations

import anndata
import numpy as np
import pandas as pd
import pytest
import yaml
from kedro.validation.exceptions import ParameterValidationError
from PIL import Image

from tests.conftest import C3_WINDOW, GENE_LIST_785, HER2ST_REAL, kedro_session, write_hest_sample

pytestmark = pytest.mark.integration


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


@pytest.mark.skipif(not C3_WINDOW.is_dir(), reason="real C3 fixture (../shared/data) not present")
def test_hest_environment_plans_folds_by_patient_and_patches_the_pyramidal_slides(project_copy, monkeypatch):
    """A folder of HEST-1k samples (three copies of the real C3 crop, two patients) through
    `kedro folds plan --env hest` and the data pipelines: one fold per patient, patches from the
    tiled TIFFs, µm/px from the metadata."""
    counts = pd.read_csv(C3_WINDOW / "C3_window_785genes.tsv.gz", sep="\t", index_col=0)
    spots = pd.read_csv(C3_WINDOW / "C3_window_selection.tsv", sep="\t")
    image = np.asarray(Image.open(C3_WINDOW / "C3_window.jpg").convert("RGB"))
    hest = project_copy / "hest"
    for sample, patient in (("SPA121", "Patient C"), ("SPA120", "Patient C"), ("SPA114", "Patient D")):
        write_hest_sample(hest, sample, counts, spots, image, patient=patient, mpp=0.69)
    monkeypatch.setenv("HEST_DIR", str(hest))
    params = {"preprocessing": {"gene_selection": {"min_spots_expressed": 10}}}
    with kedro_session(project_copy, env="hest", runtime_params=params) as session:
        session.run(pipeline_names=["preprocessing", "patching", "graph_building"])
    plan = yaml.safe_load((project_copy / "conf" / "hest" / "parameters_folds.yml").read_text())["folds"]
    assert plan["basis"]["patients"] == {"SPA114": "Patient D", "SPA120": "Patient C", "SPA121": "Patient C"}
    tested = {fold["name"]: sorted(fold["test"]) for fold in plan["folds"] if fold["test"]}
    assert tested == {"fold_Patient_C": ["SPA120", "SPA121"], "fold_Patient_D": ["SPA114"]}
    report = pd.read_csv(project_copy / "data" / "08_reporting" / "patching_report.csv").set_index("section")
    assert report["n_spots"].tolist() == [counts.shape[0]] * 3
    section = anndata.read_h5ad(project_copy / "data" / "03_primary" / "sections" / "SPA114.h5ad")
    assert section.uns["spatial"]["SPA114"]["metadata"]["mpp"] == pytest.approx(0.69)
