"""``kedro folds``: the fold list, and folds run side by side in their own processes."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from datetime import datetime

import mlflow
import pandas as pd
import pytest
import torch
import yaml

from tests.conftest import GENE_LIST_785, HER2ST_REAL, PROJECT_ROOT
from thitogene_kedro.cli import plan_folds


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
    out = kedro(project, "folds", "plan")
    assert out.returncode == 0, out.stderr[-2000:]


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
    assert "Running node" not in text and not (project_copy / "data" / "03_primary" / "selected_genes.csv").exists()


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
        assert "Pipeline execution completed successfully" in log, name
    (a_start, a_end), (b_start, b_end) = _interval(logs["fold_SYN_A1"]), _interval(logs["fold_SYN_B1"])
    assert a_start <= b_end and b_start <= a_end  # they overlapped in time
    # the closing training run found every fold finished and trained nothing again
    assert out.stdout.count("already trained") + out.stderr.count("already trained") == 3
    runs = runs_in_store()
    assert len(runs) == 5 and all(run.info.status == "FINISHED" for run in runs)  # data, 3 folds, closing run
    assert int(mlflow.MlflowClient().get_model_version_by_alias("synthetic_thitogene", "champion").version) == 1


def test_a_failing_fold_fails_the_command_and_skips_the_closing_run(project_copy):
    fast_training(project_copy, ["SYN_A1"], final_model=False)
    plan(project_copy)
    # a device that does not exist makes the fold's training node fail (after the data pipelines ran)
    out = kedro(project_copy, "folds", "run", "--params", "training.device=cuda:99")
    assert out.returncode != 0 and "folds failed: fold_SYN_A1" in out.stdout + out.stderr
    runs = runs_in_store()
    assert sorted(run.info.status for run in runs) == ["FAILED", "FINISHED"]  # data, the fold; no closing run


def test_bad_settings_are_refused_in_one_line_before_any_node(project_copy):
    cases = [
        (("--params", "training.model.preset=foo"), "Error: parameters: training.model.preset: model 'thitogene' has no "
                                                     "preset 'foo'; choose one of ['paper_cscc', 'paper_her2st',"),
        (("--env", "her2sT"), "Error: --env her2sT: there is no environment 'her2sT'"),
    ]  # fmt: skip
    if not torch.cuda.is_available():
        cases.append((("--params", "training.device=cuda"), "Error: training.device=cuda: device 'cuda' was requested "
                                                            "but CUDA is not available on this machine"))  # fmt: skip
    plan_folds(project_copy, None, {})
    for args, expected in cases:
        out = kedro(project_copy, "run", *args)
        lines = out.stderr.strip().splitlines()
        assert out.returncode == 1 and lines[-2].startswith(expected), out.stderr[-3000:]
        assert "Traceback" not in out.stderr and len(lines) < 12, out.stderr
    assert not (project_copy / "data" / "03_primary").exists()  # no node ran
    assert "Traceback" in (project_copy / "info.log").read_text()  # the log file has the detail


@pytest.mark.skipif(not HER2ST_REAL.is_dir(), reason="real her2st copy (../shared/data/her2st) not present")
def test_a_broken_section_leaves_the_last_good_outputs_and_names_its_file(project_copy, tmp_path, monkeypatch):
    her2st = tmp_path / "her2st" / "data"
    for section in ("B4", "C3"):
        for folder, name in (("ST-cnts", f"{section}.tsv.gz"), ("ST-spotfiles", f"{section}_selection.tsv")):
            (her2st / folder).mkdir(parents=True, exist_ok=True)
            shutil.copy(HER2ST_REAL / "data" / folder / name, her2st / folder / name)
    monkeypatch.setenv("HER2ST_DIR", str(her2st.parent))
    monkeypatch.setenv("HER2ST_GENE_LIST", str(GENE_LIST_785))
    args = ("run", "--env", "her2st", "--pipelines", "preprocessing", "--params", "preprocessing.sections=B4 C3")
    assert kedro(project_copy, *args).returncode == 0
    outputs = project_copy / "data" / "03_primary"
    good = {p: p.read_bytes() for p in sorted(outputs.rglob("*")) if p.is_file()}
    assert {p.name for p in good} >= {"B4.h5ad", "C3.h5ad", "selected_genes.csv"}

    counts = pd.read_csv(her2st / "ST-cnts" / "C3.tsv.gz", sep="\t", index_col=0)
    counts.iloc[5, 3] = -2  # a negative count in one spot
    counts.to_csv(her2st / "ST-cnts" / "C3.tsv.gz", sep="\t")
    out = kedro(project_copy, *args)
    assert out.returncode == 1 and "Traceback" not in out.stderr
    error = out.stderr.strip().splitlines()[-2]
    assert error.startswith(f"Error: {her2st / 'ST-cnts' / 'C3.tsv.gz'}: section C3: ") and "negative" in error, error
    assert {p: p.read_bytes() for p in sorted(outputs.rglob("*")) if p.is_file()} == good
    assert not any(p.name.startswith(".") for p in outputs.rglob("*"))  # no staging folder or partial file left
