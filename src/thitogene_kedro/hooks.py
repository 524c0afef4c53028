"""Project hooks: fold planning from the active configuration, MLflow run hygiene and tags."""

from __future__ import annotations

import logging
import subprocess
from pathlib import Path
from typing import Any

import mlflow
from kedro.framework.context import KedroContext
from kedro.framework.hooks import hook_impl
from kedro.framework.project import pipelines
from pydantic import BaseModel

from thitogene_kedro.active_config import remember_config_loader

logger = logging.getLogger(__name__)


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


class ProjectHooks:
    """Registered in ``settings.HOOKS``."""

    def __init__(self) -> None:
        self._project_path: Path | None = None

    @hook_impl
    def after_context_created(self, context: KedroContext) -> None:
        """Plan folds from this session's configuration; record CPU/GPU use as MLflow system metrics."""
        self._project_path = Path(context.project_path)
        remember_config_loader(context.config_loader)
        pipelines.configure("thitogene_kedro.pipeline_registry")  # rebuild with this configuration
        mlflow.enable_system_metrics_logging()

    @hook_impl(tryfirst=True)
    def before_node_run(self, inputs: dict[str, Any]) -> None:
        """Hand parameters to nodes (and to kedro-mlflow's parameter logging) as plain dicts.

        Kedro turns parameters into the nodes' pydantic types; kedro-mlflow would then log each as
        one long string. As dicts they are logged flattened (``training.optimiser.lr``); every
        node validates its parameters itself.
        """
        for key, value in inputs.items():
            if key.startswith("params:") and isinstance(value, BaseModel):
                inputs[key] = value.model_dump(mode="json")

    @hook_impl(trylast=True)
    def before_pipeline_run(self, run_params: dict[str, Any], catalog) -> None:
        """Tag the MLflow run with the code version and the data it reads."""
        if mlflow.active_run() is None:
            return
        tags = {}
        found = git_commit(self._project_path or Path.cwd())
        if found:
            tags["git_commit"], tags["git_dirty"] = found[0], str(found[1]).lower()
        from thitogene_kedro.pipelines.preprocessing.nodes import choose_sections  # noqa: PLC0415 - scanpy is slow to import

        try:
            dataset = catalog.get("raw_sections")
            described = dataset._describe()
            tags["data_source"] = str(described.get("source"))
            tags["data_path"] = str(described.get("path"))
            chosen = choose_sections(dataset.load(), catalog.load("params:preprocessing"))
            tags["sections"] = " ".join(chosen)
        except Exception as error:  # noqa: BLE001 - tags are best effort; the run itself reports data errors
            logger.debug("No data tags for this run: %s", error)
        mlflow.set_tags(tags)

    @hook_impl(trylast=True)
    def after_pipeline_run(self) -> None:
        """End the MLflow run kedro-mlflow leaves active, so the next session in this process gets its own."""
        while mlflow.active_run():
            mlflow.end_run()

    @hook_impl(trylast=True)
    def on_pipeline_error(self) -> None:
        """Mark the run failed and close it."""
        while mlflow.active_run():
            mlflow.end_run(status="FAILED")
