"""``kedro folds``: the fold list, and folds run side by side in their own processes."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from datetime import datetime

import mlflow
import pytest
import yaml

from tests.conftest import PROJECT_ROOT
from thitogene_kedro.cli import plan_folds, run_side_by_side
from thitogene_kedro.errors import RunInterrupted


def fast_training(project, folds: list[str], final_model: bool = True) -> None:
    """conf/local: a 3-epoch training of ``folds`` (local replaces base's top-level ``training`` key)."""
    training = yaml.safe_load((PROJECT_ROOT / "conf" / "base" / "parameters_training.yml").read_text())
    training["training"] |= {"epochs": 3, "checkpoint_every": 1}
    training["training"]["cv"] |= {"folds": folds, "final_model": final_model}
    (project / "conf" / "local" / "parameters_training.yml").write_text(yaml.safe_dump(training))


def kedro(project, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "kedro", *args],
        cwd=project,
        capture_output=True,
        text=True,
        env=dict(os.environ),
        check=False,
    )


def plan(project) -> None:
    """``kedro folds plan``, in this process (its own CLI test is the fold-list test)."""
    plan_folds(project, None, {})


def test_fold_list_is_the_training_pipelines_namespaces(project_copy):
    fast_training(project_copy, ["SYN_A1", "SYN_B2"])
    out = kedro(project_copy, "folds", "plan")
    assert out.returncode == 0, out.stderr[-2000:]
    assert "3 folds written to conf/local/parameters_folds.yml" in out.stdout
    written = yaml.safe_load((project_copy / "conf" / "local" / "parameters_folds.yml").read_text())
    assert [f["name"] for f in written["folds"]["folds"]] == ["fold_SYN_A1", "fold_SYN_B2", "final"]
    out = kedro(project_copy, "folds", "list")
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["fold_SYN_A1", "fold_SYN_B2", "final"]


def test_a_plan_that_no_longer_fits_stops_the_run_before_any_node(project_copy):
    fast_training(project_copy, ["SYN_A1"])
    plan(project_copy)
    out = kedro(
        project_copy, "run", "--pipelines", "training", "--params", "preprocessing.sections=SYN_A1 SYN_B1 SYN_B2"
    )
    assert out.returncode != 0
    text = " ".join((out.stdout + out.stderr).split())  # the log handler wraps long lines
    assert "conf/base/ or conf/local/parameters_folds.yml" in text
    assert "section SYN_A2 trains or is tested in the plan but is not among the run's sections" in text
    assert "Run `kedro folds plan" in text
    assert "nodes done" not in text and not (project_copy / "data" / "03_primary" / "selected_genes.csv").exists()


def runs_in_store(experiment: str = "thitogene_kedro") -> list[mlflow.entities.Run]:
    """The runs the subprocesses logged (this process's MLflow may point at an earlier test's store)."""
    mlflow.set_tracking_uri(os.environ["MLFLOW_TRACKING_URI"])
    return mlflow.search_runs(experiment_names=[experiment], output_format="list")


def _interval(log: str) -> tuple[datetime, datetime]:
    stamps = re.findall(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) - ", log, flags=re.MULTILINE)
    return datetime.strptime(stamps[0], "%Y-%m-%d %H:%M:%S,%f"), datetime.strptime(stamps[-1], "%Y-%m-%d %H:%M:%S,%f")


def test_folds_run_side_by_side_then_the_summary_reuses_them(project_copy):
    fast_training(project_copy, ["SYN_A1", "SYN_B1"])
    plan(project_copy)
    out = kedro(project_copy, "folds", "run", "--per-device", "3")
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    logs = {
        name: (project_copy / "logs" / "folds" / f"{name}.log").read_text()
        for name in ("fold_SYN_A1", "fold_SYN_B1", "final")
    }
    for name, log in logs.items():
        assert re.search(r"run completed: \d+ nodes in", log), name
    (a_start, a_end), (b_start, b_end) = _interval(logs["fold_SYN_A1"]), _interval(logs["fold_SYN_B1"])
    assert a_start <= b_end and b_start <= a_end  # they overlapped in time
    # the closing training run found every fold finished and trained nothing again
    assert out.stdout.count("already trained") + out.stderr.count("already trained") == 3
    assert ": training (" not in out.stdout + out.stderr  # a reused fold is logged as reused only
    assert all(": training (thitogene small" in logs[fold] for fold in ("fold_SYN_A1", "fold_SYN_B1"))
    runs = runs_in_store()
    assert len(runs) == 5 and all(run.info.status == "FINISHED" for run in runs)  # data, 3 folds, closing run
    assert int(mlflow.MlflowClient().get_model_version_by_alias("synthetic_thitogene", "champion").version) == 1


def test_folds_of_a_model_on_frozen_features_fan_out_through_feature_training(project_copy, tmp_path):
    """``--pipeline feature_training``: the features once in the data step, each fold alone in its
    own process (its namespace selects the encoder's features itself), then the closing run."""
    from tests.encoders.test_frozen import small_weights  # noqa: PLC0415
    from tests.pipelines.features.test_pipeline import use_encoder  # noqa: PLC0415

    _, weights = small_weights(tmp_path, "uni")
    use_encoder(project_copy, weights)
    fast_training(project_copy, ["SYN_A1"], final_model=False)
    plan(project_copy)
    params = "training.model.name=thitogene_head,training.model.preset=small"
    out = kedro(project_copy, "folds", "run", "--pipeline", "feature_training", "--params", params)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    log = (project_copy / "logs" / "folds" / "fold_SYN_A1.log").read_text()
    assert ": training (thitogene_head small" in log and "Features (uni-" not in log  # encoded once, before
    assert "Features (uni-" in out.stderr and "already trained" in out.stdout + out.stderr
    assert (project_copy / "data" / "08_reporting" / "fold_SYN_A1" / "test_scores.csv").is_file()


def test_a_failing_fold_fails_the_command_and_skips_the_closing_run(project_copy):
    fast_training(project_copy, ["SYN_A1"], final_model=False)
    plan(project_copy)
    # a model override that contradicts the patching settings fails in the fold's training node
    out = kedro(project_copy, "folds", "run", "--params", "training.model.overrides.patch_size=64")
    assert out.returncode != 0 and "folds failed: fold_SYN_A1" in out.stdout + out.stderr
    log = (project_copy / "logs" / "folds" / "fold_SYN_A1.log").read_text()
    assert "Error: training.model.overrides.patch_size=64 contradicts patching.patch_size=112" in log
    runs = runs_in_store()
    assert sorted(run.info.status for run in runs) == ["FAILED", "FINISHED"]  # data, the fold; no closing run


def test_a_signal_to_the_side_by_side_command_stops_its_runs(tmp_path):
    """SIGTERM to ``kedro folds run`` / ``kedro study run`` reaches the runs it started (each then
    records itself KILLED), and the command says where it stopped."""
    started = tmp_path / "started"
    child = f"import pathlib, time; pathlib.Path({str(started)!r}).joinpath(__import__('sys').argv[1]).touch(); time.sleep(120)"
    started.mkdir()

    def send_sigterm_once_both_run() -> None:
        while len(list(started.iterdir())) < 2:
            time.sleep(0.05)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=send_sigterm_once_both_run, daemon=True).start()
    began = time.monotonic()
    with pytest.raises(RunInterrupted) as stopped:
        run_side_by_side(["fold_a", "fold_b", "fold_c"], ["cpu"], 2, lambda f: [sys.executable, "-c", child, f],
                         tmp_path / "logs")  # fmt: skip
    assert time.monotonic() - began < 60  # the children were stopped, not waited for
    assert str(stopped.value).startswith("run interrupted by SIGTERM during 2 runs side by side (fold_a, fold_b)")
    assert sorted(p.name for p in started.iterdir()) == ["fold_a", "fold_b"]  # fold_c never started
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
