"""Earlier MLflow runs' evaluation tables, for comparing this run with them section by section."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import mlflow
import pandas as pd
from kedro.io import AbstractDataset, DatasetError

logger = logging.getLogger(__name__)

PROTOCOL_PARAMS = ("training.cv.scheme", "training.cv.folds", "preprocessing.sections", "training.cv.held_out_sections")
PROTOCOL_TAGS = ("data_source", "sections")


@dataclass(frozen=True)
class EarlierRuns:
    """The active run's protocol (its tags and parameters) and earlier finished runs' per-section tables.

    ``tables`` has one row per (run, section) with ``run_id`` and each run's protocol columns
    (``param:<key>``, ``tag:<key>``), newest run first; ``current`` is None outside an MLflow run.
    """

    current: dict[str, str] | None
    current_run_id: str | None
    tables: pd.DataFrame = field(default_factory=pd.DataFrame)


def _protocol(run: mlflow.entities.Run) -> dict[str, str]:
    return {f"param:{k}": run.data.params.get(k) for k in PROTOCOL_PARAMS} | {
        f"tag:{k}": run.data.tags.get(k) for k in PROTOCOL_TAGS
    }


class EarlierRunsDataset(AbstractDataset[None, EarlierRuns]):
    """Loads :class:`EarlierRuns` from the active run's experiment (read-only).

    Example catalog entry::

        earlier_runs:
          type: thitogene_kedro.datasets.EarlierRunsDataset
          artifact_path: evaluation/sections.csv
    """

    def __init__(self, artifact_path: str = "evaluation/sections.csv", max_runs: int = 200,
                 metadata: dict[str, Any] | None = None) -> None:  # fmt: skip
        self._artifact_path = artifact_path
        self._max_runs = max_runs
        self.metadata = metadata

    def load(self) -> EarlierRuns:
        active = mlflow.active_run()
        if active is None:
            return EarlierRuns(None, None)
        current = mlflow.get_run(active.info.run_id)
        runs = mlflow.search_runs(
            experiment_ids=[current.info.experiment_id], filter_string="attributes.status = 'FINISHED'",
            output_format="list", order_by=["attributes.start_time DESC"], max_results=self._max_runs,
        )  # fmt: skip
        tables = []
        for run in runs:
            if run.info.run_id == current.info.run_id:
                continue
            try:
                path = mlflow.artifacts.download_artifacts(run_id=run.info.run_id, artifact_path=self._artifact_path)
            except Exception:  # noqa: BLE001 - runs without an evaluation (e.g. training only) are skipped
                logger.info("Run %s has no %s; not compared", run.info.run_id, self._artifact_path)
                continue
            tables.append(pd.read_csv(path).assign(run_id=run.info.run_id, **_protocol(run)))
        frame = pd.concat(tables, ignore_index=True) if tables else pd.DataFrame()
        return EarlierRuns(_protocol(current), current.info.run_id, frame)

    def save(self, data: None) -> None:
        raise DatasetError("EarlierRunsDataset is read-only")

    def _describe(self) -> dict[str, Any]:
        return {"artifact_path": self._artifact_path, "max_runs": self._max_runs}
