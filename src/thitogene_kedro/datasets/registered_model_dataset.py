"""Log a trained model as an MLflow pyfunc in the current run, register it and set an alias."""

from __future__ import annotations

from importlib import metadata
from pathlib import Path
from typing import Any

from kedro_mlflow.io.models import MlflowModelTrackingDataset
from mlflow import MlflowClient

import thitogene_kedro

# What the model's code imports at module level when MLflow loads it (mlflow itself is added by
# MLflow; what these require comes with them): tests/datasets/test_registered_model.py checks the
# list against the imports of the modules loading loads. Pinned to the versions it was trained with;
# local version labels (``+cpu``) dropped, so an index has them.
MODEL_DEPENDENCIES = ("torch", "numpy", "pandas", "scipy", "pydantic", "anndata", "pillow")


def model_requirements() -> list[str]:
    """``pip`` requirements of a registered model: :data:`MODEL_DEPENDENCIES` at their installed versions.

    The project's own code travels as ``code_paths``; it is not a requirement (it is not published).
    """
    return [f"{name}=={metadata.version(name).split('+')[0]}" for name in MODEL_DEPENDENCIES]


class RegisteredModelDataset(MlflowModelTrackingDataset):
    """kedro-mlflow's model dataset, registering under the name the model carries.

    The saved object is a :class:`thitogene_kedro.models.pyfunc.SpotExpressionPredictor`; its
    ``registered_name`` picks the registered model (one per data set and model) and every save
    makes a new version, to which ``alias`` is then moved. The package's code travels with the
    model (``code_paths``) and its environment lists the packages that code needs, pinned
    (:func:`model_requirements`), so MLflow can rebuild it (``--env-manager virtualenv``).
    """

    def __init__(self, alias: str = "champion", save_args: dict[str, Any] | None = None, **kwargs: Any) -> None:
        package = str(Path(thitogene_kedro.__file__).parent)
        save_args = {
            "name": "model", "code_paths": [package], "pip_requirements": model_requirements(), **(save_args or {})
        }  # fmt: skip
        super().__init__(flavor="mlflow.pyfunc", pyfunc_workflow="python_model", save_args=save_args, **kwargs)
        self._alias = alias

    def _save(self, model: Any) -> None:
        self._save_args["registered_model_name"] = model.registered_name
        self._save_args["signature"] = model.signature()
        self._save_args["input_example"] = model.input_example()
        super()._save(model)
        version = str(self.model_info.registered_model_version)
        client = MlflowClient()
        client.set_registered_model_alias(model.registered_name, self._alias, version)
        run = client.get_run(self.model_info.run_id) if self.model_info.run_id else None
        description, tags = version_card(model.trained, run.data.tags if run else {}, run.data.metrics if run else {})
        client.update_model_version(model.registered_name, version, description)
        for key, value in tags.items():
            client.set_model_version_tag(model.registered_name, version, key, value)


def version_card(trained: Any, run_tags: dict[str, str], run_metrics: dict[str, float]) -> tuple[str, dict[str, str]]:
    """The registered version's description and tags: what it is, what it was trained on, from which code."""
    source = run_tags.get("data_source", "unknown")
    sections = list(trained.fold.train)
    description = (
        f"{trained.spec.name} ({trained.spec.preset}) trained on {len(sections)} {source} section(s): "
        f"{' '.join(sections)}; {len(trained.genes)} genes; fold {trained.fold.name}; "
        f"commit {run_tags.get('git_commit', 'unknown')}"
    )
    tags = {
        "data_source": source, "model": trained.spec.name, "preset": trained.spec.preset, "fold": trained.fold.name,
        "training_sections": " ".join(sections), "genes": str(len(trained.genes)),
        "patch_size": str(trained.inputs.patch_size), "git_commit": run_tags.get("git_commit", "unknown"),
    }  # fmt: skip
    mpp = trained.inputs.mpp
    if mpp is not None:  # the physical size the model saw: inference cuts new slides to match it
        tags["training_mpp"] = f"{mpp:.4f}"
        tags["patch_um"] = f"{trained.inputs.patch_size * mpp:.1f}"
        description += (
            f"; {mpp:.3f} µm/px, {trained.inputs.patch_size} px patches of {trained.inputs.patch_size * mpp:.0f} µm"
        )
    if "cv.pcc_mean_over_sections" in run_metrics:
        tags["cv_pcc_mean_over_sections"] = f"{run_metrics['cv.pcc_mean_over_sections']:.4f}"
    return description, tags
