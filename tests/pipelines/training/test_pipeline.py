"""The training pipeline in real Kedro sessions on the synthetic demo, with a temporary MLflow store."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import anndata as ad
import mlflow
import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from mlflow import MlflowClient

from tests.conftest import (
    GENE_LIST_785,
    HER2ST_REAL,
    assert_scanpy_and_squidpy_draw_it_over_the_tissue,
    kedro_session,
    module_project,
    use_module_project,
)
from tests.pipelines.training.killing import kill_after_checkpoint
from thitogene_kedro.cli import parse_params, plan_folds
from thitogene_kedro.models import SectionExample, build_model, collate_sections
from thitogene_kedro.processing.spot_graphs import knn_edge_index
from thitogene_kedro.sections.schema import SectionDataError
from thitogene_kedro.training.checkpoints import CheckpointStore

pytestmark = pytest.mark.integration

FAST = {"training": {"epochs": 3, "checkpoint_every": 1, "cv": {"folds": ["SYN_A1", "SYN_B1"]}}}


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def latest_run() -> mlflow.entities.Run:
    return mlflow.search_runs(experiment_names=["thitogene_kedro"], order_by=["start_time DESC"], output_format="list")[
        0
    ]


@pytest.fixture(scope="module")
def trained_once(tmp_path_factory) -> Iterator[tuple[Path, str]]:
    """One FAST training session (system metrics sampled each second) for the tests that only read it."""
    with module_project(tmp_path_factory, "trained") as (project, store):
        mlflow.set_system_metrics_sampling_interval(1)
        try:
            with kedro_session(project, runtime_params=FAST) as session:
                session.run(pipeline_names=["training"])
        finally:
            mlflow.set_system_metrics_sampling_interval(None)
        yield project, store


@pytest.fixture
def trained(trained_once, monkeypatch) -> Path:
    return use_module_project(trained_once, monkeypatch)


def test_training_records_folds_and_registers_a_loadable_model(trained):
    project_copy = trained
    store = os.environ["MLFLOW_TRACKING_URI"]
    assert mlflow.get_tracking_uri() == store and not (project_copy / "mlflow.db").exists()

    run = latest_run()
    assert run.info.status == "FINISHED" and run.data.tags["data_source"] == "synthetic"
    assert run.data.tags["sections"] == "SYN_A1 SYN_A2 SYN_B1 SYN_B2"
    assert run.data.params["training.optimiser.lr"] == "0.003" and run.data.params["training.model.name"] == "thitogene"
    client = MlflowClient()
    # one system-metrics monitor per run: every step holds one sample (several monitors on one run
    # would log duplicate steps, which then break log_model's metric linking)
    cpu_steps = [m.step for m in client.get_metric_history(run.info.run_id, "system/cpu_utilization_percentage")]
    assert cpu_steps and len(cpu_steps) == len(set(cpu_steps))
    for fold in ("fold_SYN_A1", "fold_SYN_B1"):
        losses = client.get_metric_history(run.info.run_id, f"{fold}.train_loss")
        assert [m.step for m in losses] == [1, 2, 3]  # each epoch once: logged as it ended, not again at the end
        assert f"{fold}.test.{fold[5:]}.pcc_mean" in run.data.metrics
        # logged one epoch at a time: as far apart as the epochs took (at the end they would be ms apart)
        seconds = [m.value for m in client.get_metric_history(run.info.run_id, f"{fold}.seconds")]
        assert (losses[-1].timestamp - losses[0].timestamp) / 1000 >= 0.8 * sum(seconds[1:]), (losses, seconds)
    assert "cv.pcc_mean_over_sections" in run.data.metrics and "final.train_loss" in run.data.metrics
    # held-out predictions open in scanpy as they are: spots over the section's own image
    held_out = ad.read_h5ad(project_copy / "data" / "07_model_output" / "fold_SYN_A1" / "test_predictions.h5ad")
    assert list(held_out.uns["spatial"]) == ["SYN_A1"] and "observed" in held_out.layers
    assert held_out.uns["prediction"]["clamped_at_zero"] == False  # noqa: E712 - the raw output the scores use
    assert held_out.uns["prediction"]["n_below_zero"] == int((held_out.X < 0).sum())
    assert held_out.uns["spatial"]["SYN_A1"]["scalefactors"]["spot_diameter_fullres"] == pytest.approx(60, rel=0.05)
    assert_scanpy_and_squidpy_draw_it_over_the_tissue(held_out)
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id, "fold_SYN_A1")}
    assert {
        "fold_SYN_A1/training_history.csv",
        "fold_SYN_A1/training_summary.json",
        "fold_SYN_A1/genes.csv",
    } <= artifacts

    version = client.get_model_version_by_alias("synthetic_thitogene", "champion")
    assert version.run_id == run.info.run_id
    assert version.description.startswith(
        "thitogene (small) trained on 4 synthetic section(s): SYN_A1 SYN_A2 SYN_B1 SYN_B2; "
    )
    predictor = mlflow.pyfunc.load_model("models:/synthetic_thitogene@champion")
    assert version.tags["data_source"] == "synthetic" and version.tags["fold"] == "final"
    assert version.tags["genes"] == str(len(predictor.unwrap_python_model().genes))
    assert version.tags["git_commit"] == run.data.tags.get("git_commit", "unknown")
    # the signature names the output genes; the stored input example is a request the model answers
    info = mlflow.models.get_model_info("models:/synthetic_thitogene@champion")
    assert (
        info.signature.inputs is None and info.signature.outputs.input_names() == predictor.unwrap_python_model().genes
    )
    example = mlflow.models.Model.load("models:/synthetic_thitogene@champion").load_input_example(
        mlflow.artifacts.download_artifacts("models:/synthetic_thitogene@champion")
    )
    assert predictor.predict(example).shape == (9, len(predictor.unwrap_python_model().genes))  # 3 x 3 spots
    # an environment MLflow can rebuild: the code travels with the model, its dependencies are pinned
    requirements = mlflow.pyfunc.get_model_dependencies("models:/synthetic_thitogene@champion")
    pinned = {line.split("==")[0] for line in Path(requirements).read_text().split() if "==" in line}
    assert {"torch", "numpy", "pandas", "anndata", "mlflow"} <= pinned and not any("thitogene" in p for p in pinned)

    data = project_copy / "data"
    patches = np.load(data / "04_feature" / "patches" / "SYN_A1.npz")["patches"]
    graph = np.load(data / "04_feature" / "spot_graphs" / "SYN_A1.npz")
    table = predictor.predict({"patches": patches, "positions": graph["positions"]})
    final = torch.load(data / "06_models" / "final" / "model.pt", weights_only=True)
    assert list(table.columns) == final["genes"] and table.shape == (len(patches), len(final["genes"]))

    model = build_model(final["model"], len(final["genes"]))
    model.load_state_dict(final["state_dict"])
    example = SectionExample("SYN_A1", patches, graph["positions"], knn_edge_index(graph["positions"], 4))
    with torch.no_grad():
        direct = model.eval()(collate_sections([example])).prediction[0].numpy()
    np.testing.assert_allclose(table.to_numpy(), direct, rtol=1e-5, atol=1e-5)


def _reachable(host: str) -> bool:
    try:
        socket.create_connection((host, 443), timeout=3).close()
    except OSError:
        return False
    return True


@pytest.mark.skipif(
    os.environ.get("THITOGENE_TEST_MODEL_REBUILD") != "1",
    reason="builds the registered model a fresh environment from the package index (torch included: minutes "
    "and gigabytes); run `make test-model-rebuild` (sets THITOGENE_TEST_MODEL_REBUILD=1)",
)
def test_the_registered_model_rebuilds_its_environment_and_predicts_from_a_clean_folder(trained, tmp_path):
    """MLflow builds the model's own environment (its requirements, its code) and predicts in it."""
    manager = "uv" if shutil.which("uv") else "virtualenv"  # virtualenv: pyenv fetches the interpreter
    hosts = ["pypi.org"] if manager == "uv" else ["pypi.org", "www.python.org"]
    if not all(_reachable(host) for host in hosts):
        pytest.skip(f"the model's environment is built from {hosts}, which this machine cannot reach")
    data = trained / "data" / "04_feature"
    patches = np.load(data / "patches" / "SYN_B1.npz")["patches"][:8]
    positions = np.load(data / "spot_graphs" / "SYN_B1.npz")["positions"][:8]
    request = tmp_path / "request.json"
    request.write_text(json.dumps({"inputs": {"patches": patches.tolist(), "positions": positions.tolist()}}))
    clean = tmp_path / "elsewhere"  # no project here: the model runs in the environment MLflow builds for it
    clean.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"} | {"MLFLOW_ENV_ROOT": str(tmp_path / "envs")}
    mlflow_cli = Path(sys.executable).with_name("mlflow")
    out = subprocess.run(
        [str(mlflow_cli), "models", "predict", "-m", "models:/synthetic_thitogene@champion", "--env-manager",
         manager, "-i", str(request), "-t", "json", "-o", str(tmp_path / "answer.json")],
        check=False, cwd=clean, env=env, capture_output=True, text=True, timeout=3600,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-4000:]
    answer = json.loads((tmp_path / "answer.json").read_text())["predictions"]
    expected = mlflow.pyfunc.load_model("models:/synthetic_thitogene@champion").predict(
        {"patches": patches, "positions": positions}
    )
    got = np.array([[row[g] for g in expected.columns] for row in answer])
    np.testing.assert_allclose(got, expected.to_numpy(), rtol=1e-4, atol=1e-5)
    assert not (clean / "mlflow.db").exists() and not (clean / "mlruns").exists()  # the store was found, not made


def test_no_test_section_reaches_a_folds_training_inputs(trained):
    project_copy = trained
    plan = yaml.safe_load((project_copy / "conf" / "local" / "parameters_folds.yml").read_text())["folds"]
    planned = {f["name"]: f for f in plan["folds"]}
    for fold in ("fold_SYN_A1", "fold_SYN_B1"):
        definition = planned[fold]
        summary = json.loads((project_copy / "data" / "08_reporting" / fold / "training_summary.json").read_text())
        assert definition["test"] == [fold[5:]] and fold[5:] not in definition["train"] + definition["validation"]
        assert summary["fold"] == definition
        predictions = pd.read_csv(project_copy / "data" / "08_reporting" / fold / "test_scores.csv")
        assert predictions["section"].tolist() == definition["test"]


def test_a_failing_fold_stops_the_run_and_keeps_stored_results(project_copy):
    with kedro_session(project_copy, runtime_params=FAST) as session:
        session.run(pipeline_names=["training"])
    data = project_copy / "data"
    kept = {
        p: digest(p)
        for p in [data / "06_models" / "fold_SYN_A1" / "model.pt", data / "06_models" / "final" / "model.pt"]
    }
    patches = data / "04_feature" / "patches" / "SYN_B1.npz"
    stored = dict(np.load(patches))
    np.savez(patches, patches=stored["patches"][:-3], spot_ids=stored["spot_ids"][:-3])  # three spots lack a patch

    with kedro_session(project_copy, runtime_params=FAST) as session:
        with pytest.raises(SectionDataError, match=r"SYN_B1.*no patch for spots .* rerun patching"):
            session.run(pipeline_names=["training"], namespaces=["fold_SYN_B1"])
    assert latest_run().info.status == "FAILED"
    assert {p: digest(p) for p in kept} == kept
    client = MlflowClient()
    assert [int(v.version) for v in client.search_model_versions("name='synthetic_thitogene'")] == [1]


def _interrupted_run(project: Path, params: str, fold: str, sig: signal.Signals) -> subprocess.CompletedProcess:
    """``kedro run --pipelines training`` as a user starts it in a terminal, sent ``sig`` once
    ``fold`` has written a checkpoint of epoch 3."""
    kedro = Path(sys.executable).with_name("kedro")
    env = {**os.environ, "KEDRO_DISABLE_TELEMETRY": "true"}
    # as in a terminal, SIGINT is not ignored, even where CI starts the tests with it ignored
    terminal = (
        "import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); os.execv(sys.argv[1], sys.argv[1:])"
    )
    job = subprocess.Popen(
        [sys.executable, "-c", terminal, str(kedro), "run", "--pipelines", "training", "--params", params],
        cwd=project, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    store = CheckpointStore(project / "data" / "06_models" / "checkpoints" / fold)
    kill_after_checkpoint(job, store, 3, timeout=300, sig=sig)
    return subprocess.CompletedProcess(job.args, job.returncode, "", job.stderr.read())


def _latest_run() -> mlflow.entities.Run:
    mlflow.set_tracking_uri(os.environ["MLFLOW_TRACKING_URI"])
    return mlflow.search_runs(experiment_names=["thitogene_kedro"], output_format="list", order_by=["start_time DESC"])[
        0
    ]


def test_interrupted_runs_are_recorded_killed_and_resume_unfinished_folds(project_copy):
    """Ctrl-C, then SIGTERM, to real ``kedro run`` processes: each MLflow run ends KILLED, tagged
    with where it stopped, one line says how to resume; the rerun resumes and skips finished folds."""
    params = (
        "training.epochs=8,training.checkpoint_every=1,training.cv.folds=SYN_A1 SYN_B1,training.cv.final_model=false"
    )
    plan_folds(project_copy, None, parse_params(params))  # as `kedro folds plan --params ...` does
    checkpoints = project_copy / "data" / "06_models" / "checkpoints"
    for fold, sig, code in (("fold_SYN_A1", signal.SIGINT, 130), ("fold_SYN_B1", signal.SIGTERM, 143)):
        out = _interrupted_run(project_copy, params, fold, sig)
        assert out.returncode == code, out.stderr[-3000:]
        last = out.stderr.strip().splitlines()[-1]
        run = _latest_run()
        stopped_after = int(run.data.tags["interrupted_after_epoch"])
        assert last == (
            f"Stopped: run interrupted by {sig.name} in {fold} after epoch {stopped_after}; its checkpoint of epoch "
            f"{run.data.tags['last_checkpoint_epoch']} is kept; run the same command again to resume"
        ), out.stderr[-3000:]
        assert "Traceback" not in out.stderr
        assert run.info.status == "KILLED" and run.data.tags["interrupted_by"] == sig.name
        assert (
            run.data.tags["interrupted_in_fold"] == fold
            and run.data.tags["interrupted_in_node"] == f"{fold}.train_fold"
        )
        assert int(run.data.tags["last_checkpoint_epoch"]) == max(CheckpointStore(checkpoints / fold).epochs())
    interrupted_at = max(CheckpointStore(checkpoints / "fold_SYN_B1").epochs())
    assert CheckpointStore(checkpoints / "fold_SYN_A1").latest()["complete"]  # the second run resumed and finished it

    runtime = {
        "training": {"epochs": 8, "checkpoint_every": 1, "cv": {"folds": ["SYN_A1", "SYN_B1"], "final_model": False}}
    }
    with kedro_session(project_copy, runtime_params=runtime) as session:
        session.run(pipeline_names=["training"])
    summaries = {
        fold: json.loads((project_copy / "data" / "08_reporting" / fold / "training_summary.json").read_text())
        for fold in ("fold_SYN_A1", "fold_SYN_B1")
    }
    assert summaries["fold_SYN_A1"]["reused_finished_fold"] and summaries["fold_SYN_A1"]["resumed_from_epoch"] is None
    assert not summaries["fold_SYN_B1"]["reused_finished_fold"]
    assert summaries["fold_SYN_B1"]["resumed_from_epoch"] == interrupted_at + 1
    assert summaries["fold_SYN_B1"]["epochs_run"] == 8


@pytest.mark.skipif(not HER2ST_REAL.is_dir(), reason="real her2st copy (../shared/data/her2st) not present")
def test_training_on_real_her2st_sections(project_copy, monkeypatch):
    """her2st environment, three real sections with images, one fold, two epochs, the 785 paper genes."""
    monkeypatch.setenv("HER2ST_DIR", str(HER2ST_REAL))
    monkeypatch.setenv("HER2ST_GENE_LIST", str(GENE_LIST_785))
    params = {
        "preprocessing": {"sections": "B4 C2 C3 A2"},
        "training": {"epochs": 2, "cv": {"folds": ["C3"]}},
    }
    with kedro_session(project_copy, env="her2st", runtime_params=params) as session:
        session.run(pipeline_names=["training"])
    data = project_copy / "data"
    fold = json.loads((data / "08_reporting" / "fold_C3" / "training_summary.json").read_text())["fold"]
    assert fold["test"] == ["C3"] and sorted(fold["train"]) == ["B4", "C2"]  # A2 has no image here
    scores = pd.read_csv(data / "08_reporting" / "fold_C3" / "test_scores.csv")
    assert scores["spots"].tolist() == [180] and scores["genes"].tolist() == [785]
    assert int(MlflowClient().get_model_version_by_alias("her2st_thitogene", "champion").version) == 1

    # inference on the real C3 slide with its spot table reproduces the model on the data pipelines' inputs
    graph = np.load(data / "04_feature" / "spot_graphs" / "C3.npz")
    table = pd.read_csv(HER2ST_REAL / "data" / "ST-spotfiles" / "C3_selection.tsv", sep="\t")
    counted = table[
        (table["x"].round().astype(int).astype(str) + "x" + table["y"].round().astype(int).astype(str)).isin(
            graph["spot_ids"]
        )
    ]
    spots = project_copy / "C3_counted_selection.tsv"  # the spots that have counts (the spot file lists 2 more)
    counted.to_csv(spots, sep="\t", index=False)
    image = next((HER2ST_REAL / "data" / "ST-imgs" / "C" / "C3").iterdir())
    inference = {"inference": {"image": str(image), "spots": str(spots)}}
    with kedro_session(project_copy, env="her2st", runtime_params={**params, **inference}) as session:
        session.run(pipeline_names=["inference"])
    predicted = ad.read_h5ad(data / "07_model_output" / "inference" / "predictions.h5ad")
    model = mlflow.pyfunc.load_model("models:/her2st_thitogene@champion")
    direct = model.predict(
        {
            "patches": np.load(data / "04_feature" / "patches" / "C3.npz")["patches"],
            "positions": graph["positions"],
            "edge_index": graph["edge_index"],
        }
    )
    direct.index = graph["spot_ids"]
    # her2st JPEGs carry no usable resolution: the slide is taken at the model's own training µm/px,
    # the median of B4's and C2's from their spots (100 µm across, 200 µm apart), also a version tag
    version = MlflowClient().get_model_version_by_alias("her2st_thitogene", "champion")
    assert 0.67 < float(version.tags["training_mpp"]) < 0.70 and float(version.tags["patch_um"]) == pytest.approx(
        112 * float(version.tags["training_mpp"]), abs=0.1
    )
    assert predicted.uns["slide"]["mpp"] == pytest.approx(float(version.tags["training_mpp"]), abs=1e-4)
    assert predicted.uns["slide"]["patch_px"] == 112
    grid = {"inference": {"image": str(image), "mpp": 0.687}}  # no spot table: a grid (the JPEG records no resolution)
    with kedro_session(project_copy, env="her2st", runtime_params={**params, **grid}) as session:
        session.run(pipeline_names=["inference"])
    gridded = ad.read_h5ad(data / "07_model_output" / "inference" / "predictions.h5ad")
    assert gridded.uns["slide"]["spots_from"] == "grid" and 0.6 * 180 < gridded.n_obs < 1.6 * 180
    assert (data / "08_reporting" / "inference" / "predicted_genes.png").stat().st_size > 10_000
    np.testing.assert_allclose(predicted[direct.index].X, direct.to_numpy(), rtol=1e-4, atol=1e-4)  # both clamped


def test_sessions_in_one_process_each_get_their_own_run(project_copy):
    """A notebook or test that runs two folds one after the other: the second never logs into the
    first's run (kedro-mlflow leaves its run active; the project hook closes it)."""
    runs = []
    for fold in ("SYN_A1", "SYN_B1"):
        params = {"training": {**FAST["training"], "cv": {"folds": [fold], "final_model": False}}, "run_name": fold}
        with kedro_session(project_copy, runtime_params=params) as session:
            session.run(pipeline_names=["training"])
        assert mlflow.active_run() is None
        runs.append(latest_run())
    first, second = runs
    assert first.info.run_id != second.info.run_id
    assert (first.info.run_name, second.info.run_name) == ("SYN_A1", "SYN_B1")
    assert "fold_SYN_A1.train_loss" in first.data.metrics and "fold_SYN_A1.train_loss" not in second.data.metrics
    assert "fold_SYN_B1.train_loss" in second.data.metrics and "fold_SYN_B1.train_loss" not in first.data.metrics
    assert all(run.info.status == "FINISHED" for run in runs)
