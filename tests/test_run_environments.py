"""Kedro sessions of the real project configuration that need no trained model: parameter
validation and the her2st environment (beside tests/test_run.py, so the two workers share the load)."""

from __future__ import annotations

import pandas as pd
import pytest
from kedro.validation.exceptions import ParameterValidationError

from tests.conftest import GENE_LIST_785, HER2ST_REAL, kedro_session

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
