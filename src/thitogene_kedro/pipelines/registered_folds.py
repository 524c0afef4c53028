"""The fold plan the pipelines are registered with: the ``folds`` parameters of the active environment.

The plan is configuration (``conf/<env>/parameters_folds.yml``, written by ``kedro folds plan``):
no data is read while pipelines register. The project hook hands over the session's parameters
when a Kedro context is created; without a session (e.g. ``kedro viz`` without hooks)
the parameters of ``KEDRO_ENV`` (default: base + local) are read from ``conf/``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from kedro.framework.project import settings
from pydantic import BaseModel, ValidationError

from thitogene_kedro.training.folds import FoldPlan

logger = logging.getLogger(__name__)

_session: dict[str, Any] = {}


def use_session_parameters(parameters: Mapping[str, Any]) -> None:
    """Called by the project hook with the session's parameters (its environment and ``--params``).

    Kedro hands parameters that a node's type hints name as those (pydantic) types; they are kept
    here as plain values.
    """
    _session["parameters"] = {
        key: value.model_dump(mode="json") if isinstance(value, BaseModel) else value
        for key, value in parameters.items()
    }


def _configured_parameters() -> Mapping[str, Any]:
    if "parameters" in _session:
        return _session["parameters"]
    loader = settings.CONFIG_LOADER_CLASS(
        conf_source=str(Path.cwd() / settings.CONF_SOURCE),
        env=os.environ.get("KEDRO_ENV"),
        **settings.CONFIG_LOADER_ARGS,
    )
    try:
        return loader["parameters"]
    except Exception as error:  # noqa: BLE001 - no readable configuration here (another folder): no folds
        logger.debug("no parameters readable from %s: %s", settings.CONF_SOURCE, error)
        return {}


def registered_parameter(*keys: str) -> Any:
    """A nested parameter of the registration's configuration (None where absent)."""
    value: Any = _configured_parameters()
    for key in keys:
        value = value.get(key) if isinstance(value, Mapping) else None
    return value


def registered_plan() -> FoldPlan | None:
    """The configured fold plan, or None when there is none or it is malformed (the run start reports it)."""
    folds = registered_parameter("folds")
    if not folds:
        return None
    try:
        return FoldPlan.model_validate(folds)
    except ValidationError as error:
        logger.debug("malformed fold plan: %s", error)
        return None


def plan_for_run(parameters: Mapping[str, Any], raw_sections: Any, raw_images: Any) -> FoldPlan:
    """The plan that ``parameters`` (``preprocessing``, ``training``) and the data listings give now."""
    from thitogene_kedro.pipelines.preprocessing.params import PreprocessingParams  # noqa: PLC0415
    from thitogene_kedro.pipelines.training.params import TrainingParams  # noqa: PLC0415
    from thitogene_kedro.training.planning import plan_from_data  # noqa: PLC0415

    training = TrainingParams.model_validate(parameters.get("training", {}))
    preprocessing = PreprocessingParams.model_validate(parameters.get("preprocessing", {}))
    return plan_from_data(raw_sections, raw_images, preprocessing.sections, training.cv, training.seed)
