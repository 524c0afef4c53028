"""Validated parameters of the patching pipeline (``conf/base/parameters_patching.yml``)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class PatchingParams(BaseModel):
    """How spot patches are cut from the full-resolution image.

    A patch is ``patch_size`` x ``patch_size`` RGB uint8 pixels centred on
    ``(floor(pixel_x), floor(pixel_y))``, stored as rows x columns x channels. ``orientation:
    reference_transposed`` reproduces the reference code's transposed crop (columns x rows), which
    matters only for its published checkpoints. Parts outside the image get ``pad_value``.
    """

    model_config = ConfigDict(extra="forbid")

    patch_size: int = Field(112, ge=8, le=2048)
    pad_value: int = Field(255, ge=0, le=255)
    orientation: Literal["standard", "reference_transposed"] = "standard"
