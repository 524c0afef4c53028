"""The cross-validation fan-out on a real scheduler: SLURM job array, PostgreSQL-backed MLflow server.

Runs ``tests/deploy/slurm_fanout.sh`` in a private network namespace (``unshare -n``): two fake
GPUs, a 4-fold array of the real training pipeline on tiny synthetic settings, the summary job, and
a sweep with a broken fold that must be caught. Needs root (to install Debian's slurm-wlm, munge,
iproute2 and postgresql when absent, and to create the namespace).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import PROJECT_ROOT, demo_raw_data

HERE = Path(__file__).parent
NEEDED = ("munged", "slurmctld", "slurmd", "sbatch", "squeue", "sinfo", "ip", "psql")


def _postgres_binaries() -> bool:
    return any(Path(p).joinpath("initdb").exists() for p in Path("/usr/lib/postgresql").glob("*/bin"))


def _install_packages() -> None:
    if all(shutil.which(tool) for tool in NEEDED) and _postgres_binaries():
        return
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env, capture_output=True)
    packages = ["slurm-wlm", "munge", "iproute2", "postgresql"]
    subprocess.run(["apt-get", "install", "-y", "-qq", *packages], check=True, env=env, capture_output=True)


def _tiny_project(folder: Path, raw_data: Path) -> Path:
    """A copy of the project as a user's clone has it after its first run (the demo's raw data
    drawn), with a 1-epoch `small` training in conf/local."""
    project = folder / "project"
    shutil.copytree(raw_data, project / "data" / "01_raw" / "synthetic")
    shutil.copytree(PROJECT_ROOT / "conf", project / "conf", ignore=shutil.ignore_patterns("local"))
    shutil.copytree(PROJECT_ROOT / "deploy", project / "deploy")
    shutil.copy(PROJECT_ROOT / "pyproject.toml", project)
    (project / "src").mkdir()
    (project / "conf" / "local").mkdir()
    training = yaml.safe_load((PROJECT_ROOT / "conf" / "base" / "parameters_training.yml").read_text())
    training["training"] |= {"epochs": 1, "checkpoint_every": 1}
    training["training"]["registry"]["register_folds"] = True
    (project / "conf" / "local" / "parameters_training.yml").write_text(yaml.safe_dump(training))
    return project


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root: installs slurm-wlm/munge/postgresql, creates a netns")
@pytest.mark.skipif(shutil.which("unshare") is None, reason="needs unshare for a private network namespace")
def test_folds_fan_out_as_a_slurm_array_into_one_tracking_server(tmp_path, tmp_path_factory):
    _install_packages()
    project, work = _tiny_project(tmp_path, demo_raw_data(tmp_path_factory)), tmp_path / "work"
    work.mkdir()
    # OMP_NUM_THREADS (one thread per test worker, tests/__init__.py) would also make `nproc`, and so
    # the Slurm node, one CPU: the array must see the machine's cores to run two tasks at once
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "SLURM_", "OMP_", "MKL_", "OPENBLAS_"))}
    env |= {"PATH": f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}", "KEDRO_DISABLE_TELEMETRY": "true"}
    command = [
        "unshare",
        "-n",
        "bash",
        str(HERE / "slurm_fanout.sh"),
        str(project),
        str(work),
        str(HERE / "check_fanout.py"),
    ]
    out = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900, check=False)
    report = out.stdout + out.stderr[-4000:]
    assert out.returncode == 0, report
    assert "0 failed" in out.stdout and "PASS the sweep with a broken fold fails the checks" in out.stdout, report
    lines = out.stdout.splitlines()
    for expected in ("PASS 4 READY model versions", "PASS peak concurrency 2 == 2"):
        assert any(line.startswith(expected) for line in lines), report
    # the harness stopped exactly what it started
    for trace in (str(work), "fanout-postgres"):
        left = subprocess.run(["pgrep", "-af", trace], capture_output=True, text=True, check=False).stdout
        assert not left.strip(), left
