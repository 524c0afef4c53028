"""The provenance of the running run, read when a node asks for it (read-only)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kedro.io import AbstractDataset, DatasetError

from thitogene_kedro.provenance import code_provenance


def mlflow_run_provenance(ui_url: str) -> dict[str, str]:
    """The active MLflow run's id, experiment and a link to it in the UI (empty outside a run).

    A file or database store has no UI of its own: the link is where ``make ui`` serves it (``ui_url``).
    """
    import mlflow  # noqa: PLC0415 - only when a node asks

    active = mlflow.active_run()
    if active is None:
        return {}
    uri = mlflow.get_tracking_uri()
    base = uri.rstrip("/") if uri.startswith(("http://", "https://")) else ui_url.rstrip("/")
    experiment = active.info.experiment_id
    return {
        "run_id": active.info.run_id,
        # the name as the run's tags hold it now (the project's hook renames a run after it starts)
        "run_name": mlflow.get_run(active.info.run_id).data.tags.get("mlflow.runName", active.info.run_name or ""),
        "experiment_id": experiment,
        "experiment_name": mlflow.get_experiment(experiment).name,
        "tracking_uri": uri,
        "run_link": f"{base}/#/experiments/{experiment}/runs/{active.info.run_id}",
    }


class RunProvenanceDataset(AbstractDataset[None, dict[str, Any]]):
    """``{"code": code_provenance(...), "mlflow": mlflow_run_provenance(...)}`` of the run in progress.

    ``project_path``: the checkout whose commit is recorded (default: the working directory, where
    ``kedro run`` runs); ``ui_url``: where the MLflow UI serves a local store (``make ui``).
    """

    def __init__(
        self, project_path: str | None = None, ui_url: str = "http://127.0.0.1:5000",
        metadata: dict[str, Any] | None = None,
    ):  # fmt: skip
        self._project_path = project_path
        self._ui_url = ui_url
        self._code: dict[str, Any] | None = None
        self.metadata = metadata

    def load(self) -> dict[str, Any]:
        if self._code is None:  # the code and environment do not change within a run: asked once
            self._code = code_provenance(Path(self._project_path) if self._project_path else Path.cwd())
        return {"code": self._code, "mlflow": mlflow_run_provenance(self._ui_url)}

    def save(self, data: None) -> None:
        raise DatasetError("RunProvenanceDataset is read-only")

    def _describe(self) -> dict[str, Any]:
        return {"project_path": self._project_path, "ui_url": self._ui_url}
