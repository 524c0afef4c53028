"""Log a trained model as an MLflow pyfunc in the current run, register it and set an alias."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kedro_mlflow.io.models import MlflowModelTrackingDataset
from mlflow import MlflowClient

import thitogene_kedro


class RegisteredModelDataset(MlflowModelTrackingDataset):
    """kedro-mlflow's model dataset, registering under the name the model carries.

    The saved object is a :class:`thitogene_kedro.models.pyfunc.SpotExpressionPredictor`; its
    ``registered_name`` picks the registered model (one per data set and model) and every save
    makes a new version, to which ``alias`` is then moved. The package's code travels with the
    model (``code_paths``), so loading needs only the Python dependencies.
    """

    def __init__(self, alias: str = "champion", save_args: dict[str, Any] | None = None, **kwargs: Any) -> None:
        package = str(Path(thitogene_kedro.__file__).parent)
        save_args = {"name": "model", "code_paths": [package], **(save_args or {})}
        super().__init__(flavor="mlflow.pyfunc", pyfunc_workflow="python_model", save_args=save_args, **kwargs)
        self._alias = alias

    def _save(self, model: Any) -> None:
        self._save_args["registered_model_name"] = model.registered_name
        super()._save(model)
        version = self.model_info.registered_model_version
        MlflowClient().set_registered_model_alias(model.registered_name, self._alias, str(version))
