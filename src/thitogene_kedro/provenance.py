"""Where a run's outputs come from: code version, git commit, environment, MLflow run (library layer)."""

from __future__ import annotations

import platform
import subprocess
import sys
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import thitogene_kedro

# the packages whose versions decide what a run computes, and what its outputs are read with
KEY_PACKAGES = ("torch", "numpy", "scipy", "pandas", "anndata", "scanpy", "kedro", "kedro-mlflow", "mlflow")


def cpu_name() -> str:
    """The CPU model (``/proc/cpuinfo``), else what ``platform`` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def git_commit(path: Path) -> tuple[str, bool] | None:
    """``(commit, dirty)`` of the git checkout at ``path``, or None outside one."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=path, capture_output=True, text=True, check=True, timeout=10
        ).stdout.strip()
        status = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=path, capture_output=True, text=True, check=True, timeout=10,
        ).stdout  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return None
    return commit, bool(status.strip())


def package_versions(names: tuple[str, ...] = KEY_PACKAGES) -> dict[str, str]:
    """Installed versions of ``names`` (``"absent"`` for one that is not installed)."""
    found = {}
    for name in names:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = "absent"
    return found


def code_provenance(project_path: Path) -> dict[str, Any]:
    """The code and environment a run used: package version, commit (and whether it had local
    changes), Python, platform and the key packages' versions, with the time it was asked."""
    found = git_commit(project_path)
    return {
        "code_version": thitogene_kedro.__version__,
        "git_commit": found[0] if found else "unknown",
        "git_dirty": bool(found[1]) if found else False,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "packages": package_versions(),
        "recorded_utc": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
    }


def h5ad_safe(value: Any) -> Any:
    """A nested structure that ``AnnData.write_h5ad`` stores in ``uns``: None becomes ``""``,
    tuples become lists, keys become strings."""
    if value is None:
        return ""
    if isinstance(value, dict):
        return {str(k): h5ad_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        items = [h5ad_safe(v) for v in value]
        return (
            items
            if all(isinstance(i, str | int | float | bool) for i in items)
            else {str(i): v for i, v in enumerate(items)}
        )
    return value
