"""Sweep bookkeeping: index ↔ job (the same in Python and in the job script), experiment creation,
missing indices and the summary read from MLflow, and the Kubernetes manifests."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import mlflow
import pandas as pd
import pytest
import yaml

from tests.conftest import PROJECT_ROOT
from thitogene_kedro import sweep

FOLDS, VARIANTS, SEEDS = ["fold_A", "fold_B", "fold_C"], ["thitogene", "histogene"], ["0", "1"]


def script_job(
    index: int, tracking_uri: str = "http://127.0.0.1:9", variants: list[str] = VARIANTS, folds: list[str] = FOLDS
) -> subprocess.CompletedProcess:
    """deploy/run_fold_index.sh with `kedro` replaced by `echo`, so it prints the command it would run."""
    env = {**os.environ, "FOLDS": " ".join(folds), "VARIANTS": " ".join(variants), "SEEDS": " ".join(SEEDS)}
    env |= {"MLFLOW_TRACKING_URI": tracking_uri, "EXPERIMENT": "sweep_x"}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"  # the project's python
    script = (PROJECT_ROOT / "deploy" / "run_fold_index.sh").read_text().replace("\nkedro run ", "\necho kedro run ")
    return subprocess.run(
        ["bash", "-c", script, "run_fold_index.sh", str(index)], env=env, capture_output=True, text=True, check=False
    )


def test_the_job_script_runs_the_job_python_maps_each_index_to():
    jobs = sweep.all_jobs(FOLDS, VARIANTS, SEEDS)
    assert len({job.run_name for job in jobs}) == len(jobs) == 12
    assert jobs[0] == sweep.Job("fold_A", "thitogene", "0") and jobs[4] == sweep.Job("fold_B", "histogene", "0")
    assert jobs[11] == sweep.Job("fold_C", "histogene", "1")
    for index, job in enumerate(jobs):
        out = script_job(index)
        assert out.returncode == 0, out.stderr
        command = out.stdout.splitlines()[1]
        assert f"kedro run --pipelines training --namespaces {job.fold} " in command
        assert f"run_name={job.run_name},run_suffix=-{job.variant}-s{job.seed},mlflow_experiment=sweep_x" in command
        assert f"training.model.name={job.variant},training.seed={job.seed}" in command
    with pytest.raises(IndexError):
        sweep.job_at(12, FOLDS, VARIANTS, SEEDS)
    assert "outside 0..11" in script_job(12).stderr


def test_models_on_frozen_features_fan_out_through_feature_training(monkeypatch, capsys):
    """A job of thitogene_head or linear_probe trains in feature_training's fold namespace, and the
    data step before the array adds the features pipeline (patching only where a model needs it)."""
    from thitogene_kedro.models import MODELS  # noqa: PLC0415 - torch, for this test only

    assert {name for name, (model, _) in MODELS.items() if model.input_kind == "features"} == sweep.FEATURE_MODELS
    variants = ["thitogene", "thitogene_head", "linear_probe"]
    for index, job in enumerate(sweep.all_jobs(FOLDS[:1], variants, ["0"])):
        out = script_job(index, variants=variants, folds=FOLDS[:1])
        assert out.returncode == 0, out.stderr
        pipeline = "training" if job.variant == "thitogene" else "feature_training"
        assert f"kedro run --pipelines {pipeline} --namespaces {job.fold} " in out.stdout.splitlines()[1]
    for chosen, expected in (("thitogene_head linear_probe", "preprocessing,graph_building,features"),
                             ("histogene thitogene_head", "preprocessing,patching,graph_building,features"),
                             ("thitogene", "preprocessing,patching,graph_building")):  # fmt: skip
        monkeypatch.setenv("VARIANTS", chosen)
        assert sweep.main(["data-pipelines"]) == 0
        assert capsys.readouterr().out.strip() == expected


def test_fold_jobs_refuse_to_open_the_database_themselves():
    """Only the server migrates the store: a job given a database URI stops before running anything."""
    out = script_job(0, tracking_uri="sqlite:///mlflow.db")
    assert out.returncode == 2 and "must point at the tracking server" in out.stderr and "kedro run" not in out.stdout


def _log_fold_run(experiment_id: str, job: sweep.Job, pcc: float, status: str = "FINISHED") -> None:
    with mlflow.start_run(experiment_id=experiment_id, run_name=job.run_name) as run:
        mlflow.log_metric(f"{job.fold}.test.{job.fold[5:]}1.pcc_mean", pcc)
    mlflow.MlflowClient().set_terminated(run.info.run_id, status)


def test_experiment_is_created_once_and_missing_jobs_and_summary_come_from_mlflow(tmp_path):
    mlflow.set_tracking_uri(os.environ["MLFLOW_TRACKING_URI"])
    experiment_id = sweep.create_experiment("sweep_test")
    assert sweep.create_experiment("sweep_test") == experiment_id  # the second call finds it
    jobs = sweep.all_jobs(FOLDS, VARIANTS, ["0"])
    for i, job in enumerate(jobs):
        if i == 4:
            _log_fold_run(experiment_id, job, 0.0, status="FAILED")
        elif i != 5:  # index 5 never ran
            _log_fold_run(experiment_id, job, 0.3 if job.variant == "thitogene" else 0.1 + 0.01 * i)
    assert sweep.missing_indices("sweep_test", FOLDS, VARIANTS, ["0"]) == [4, 5]

    code = sweep.summarise("sweep_test", tmp_path, expected_runs=len(jobs))
    assert code == 1  # two runs missing
    summary = pd.read_csv(tmp_path / "summary.csv").set_index("variant")
    assert summary.loc["thitogene", "runs"] == 3 and summary.loc["histogene", "runs"] == 1
    assert summary.loc["thitogene", "pcc_mean"] == pytest.approx(0.3)
    comparison = pd.read_csv(tmp_path / "comparison.csv")
    assert comparison.loc[0, "sections"] == 1  # only fold_A has both variants
    assert "| variant |" in (tmp_path / "summary.md").read_text()
    assert sweep.summarise("sweep_test", tmp_path / "again", expected_runs=4) == 0


def test_kubernetes_manifests_render_to_an_indexed_job_and_its_summary():
    values = {
        "JOB_NAME": "cv", "EXPERIMENT": "sweep_x", "COMPLETIONS": "12", "PARALLELISM": "4", "IMAGE": "thitogene:1",
        "FOLDS": " ".join(FOLDS), "VARIANTS": " ".join(VARIANTS), "SEEDS": " ".join(SEEDS), "KEDRO_ENV": "",
        "EXTRA_PARAMS": "", "MLFLOW_TRACKING_URI": "http://mlflow:5000", "DATA_PVC": "data",
    }  # fmt: skip
    job = yaml.safe_load(sweep.render((PROJECT_ROOT / "deploy/k8s/cv-indexed-job.yaml").read_text(), values))
    assert job["kind"] == "Job" and job["spec"]["completionMode"] == "Indexed"
    assert job["spec"]["completions"] == 12 and job["spec"]["parallelism"] == 4
    container = job["spec"]["template"]["spec"]["containers"][0]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert "deploy/run_fold_index.sh" in container["command"][-1] and "JOB_COMPLETION_INDEX" in container["command"][-1]
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env["FOLDS"] == "fold_A fold_B fold_C" and env["MLFLOW_TRACKING_URI"] == "http://mlflow:5000"
    summary = yaml.safe_load(sweep.render((PROJECT_ROOT / "deploy/k8s/aggregate-job.yaml").read_text(), values))
    assert summary["spec"]["template"]["spec"]["containers"][0]["command"][:4] == [
        "python", "-m", "thitogene_kedro.sweep", "summarise"
    ]  # fmt: skip
    with pytest.raises(SystemExit, match="no value for IMAGE"):
        sweep.render(
            (PROJECT_ROOT / "deploy/k8s/cv-indexed-job.yaml").read_text(),
            {k: v for k, v in values.items() if k != "IMAGE"},
        )
