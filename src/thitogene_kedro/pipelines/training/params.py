"""Validated parameters of the training pipeline (``conf/base/parameters_training.yml``)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from thitogene_kedro.models.registry import ModelSpec
from thitogene_kedro.training.settings import CrossValidationParams


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class OptimiserParams(_Strict):
    """``step_in_backward`` updates each parameter as soon as its gradient is complete and frees that
    gradient at once (the same update; saves one model-sized gradient buffer, 243 MiB for the paper model)."""

    name: Literal["adam", "adamw"] = "adam"
    lr: float = Field(1e-5, gt=0)
    weight_decay: float = Field(0.0, ge=0)
    step_in_backward: bool = False


class EarlyStoppingParams(_Strict):
    """Stop when the validation loss has not improved by ``min_delta`` for ``patience`` epochs.

    ``patience: null`` (default) trains every epoch and keeps the last, as the reference does.
    Early stopping needs ``cv.validation_sections > 0``; the best validation epoch is kept.
    """

    patience: int | None = Field(None, ge=1)
    min_delta: float = Field(0.0, ge=0)


class RegistryParams(_Strict):
    """The registered model: ``name`` (default ``<data source>_<model name>``) and the alias set on it.

    ``register_folds`` also registers each cross-validation fold's model, as ``<name>_folds`` with
    the fold's namespace as alias (a sweep's fold jobs; see docs/scale-out.md).
    """

    name: str | None = None
    alias: str = "champion"
    register_folds: bool = False


class TrainingParams(_Strict):
    """Top-level ``training`` parameters; see ``docs/training.md``."""

    model: ModelSpec = ModelSpec()
    optimiser: OptimiserParams = OptimiserParams()
    epochs: int = Field(300, ge=1)
    sections_per_step: int = Field(1, ge=1)
    seed: int = 0
    device: str = "auto"
    precision: Literal["auto", "fp32", "bf16", "fp16"] = "auto"
    data_on_device: Literal["auto"] | bool = "auto"
    reuse_freed_host_memory: Literal["auto"] | bool = Field(
        "auto",
        description="keep freed host memory for the next step instead of page-faulting it back (glibc only); "
        "auto: when a step holds at most 1,500 spots",
    )
    checkpoint_every: int = Field(10, ge=1)
    progress_every: int = Field(0, ge=0, description="epochs between progress lines; 0: five per fold")
    early_stopping: EarlyStoppingParams = EarlyStoppingParams()
    cv: CrossValidationParams = CrossValidationParams()
    registry: RegistryParams = RegistryParams()
