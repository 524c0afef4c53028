"""The fold plan when pipelines are registered, so that each fold can be a Kedro namespace.

The folds depend on the configuration (scheme, sections) and on the data (which sections have
images), so the training pipeline is built from the active configuration: the project hook
:class:`thitogene_kedro.hooks.ProjectHooks` hands over the session's config loader (with its
environment and ``--params``); without a session (e.g. ``kedro viz`` without ``--include-hooks``)
the configuration of ``KEDRO_ENV`` (default: base + local) is read from ``conf/``.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from kedro.config import AbstractConfigLoader
from kedro.framework.project import settings
from kedro.io import AbstractDataset

from thitogene_kedro.active_config import active_config_loader
from thitogene_kedro.pipelines.training.folds import Fold
from thitogene_kedro.pipelines.training.params import TrainingParams

logger = logging.getLogger(__name__)


def _config_loader() -> AbstractConfigLoader:
    active = active_config_loader()
    if active is not None:
        return active
    return settings.CONFIG_LOADER_CLASS(
        conf_source=str(Path.cwd() / settings.CONF_SOURCE),
        env=os.environ.get("KEDRO_ENV"),
        **settings.CONFIG_LOADER_ARGS,
    )


def current_fold_plan() -> list[Fold]:
    """The folds of the active configuration (reads the section list and which sections have images)."""
    from thitogene_kedro.pipelines.training.nodes import fold_plan  # noqa: PLC0415 - nodes import torch

    loader = _config_loader()
    parameters: dict[str, Any] = loader["parameters"]
    catalog = loader["catalog"]
    raw_sections = AbstractDataset.from_config("raw_sections", catalog["raw_sections"]).load()
    raw_images = AbstractDataset.from_config("raw_images", catalog["raw_images"]).load()
    return fold_plan(raw_sections, raw_images, parameters.get("preprocessing", {}), parameters.get("training", {}))


def fold_plan_or_error() -> list[Fold] | Exception:
    """The current fold plan, or the error that prevented planning (reported when a pipeline runs)."""
    try:
        return current_fold_plan()
    except Exception as error:  # noqa: BLE001 - reported by the pipelines' error node
        return error


def active_training_params() -> TrainingParams:
    """``training`` parameters of the active configuration (defaults where it cannot be read)."""
    try:
        return TrainingParams.model_validate(_config_loader()["parameters"].get("training", {}))
    except Exception as error:  # noqa: BLE001 - a bad configuration is reported when training runs
        logger.debug("training parameters not readable at registration: %s", error)
        return TrainingParams()
