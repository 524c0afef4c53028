"""Validated parameters of the evaluation pipeline (``conf/base/parameters_evaluation.yml``)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator


class ComparisonParams(BaseModel):
    """Which earlier MLflow runs to compare this run with, section by section.

    ``runs: same_protocol`` takes, per model configuration (name, preset, overrides), the latest
    finished run of this experiment with the same data source, sections and cross-validation
    scheme; a list names run ids. ``none`` compares nothing.
    """

    model_config = ConfigDict(extra="forbid")

    runs: Literal["same_protocol", "none"] | list[str] = "same_protocol"


class EvaluationParams(BaseModel):
    """Top-level ``evaluation`` parameters."""

    model_config = ConfigDict(extra="forbid")

    top_expressed: int = Field(
        50, ge=1, description="highly expressed genes (ranked on training data) for pcc_top_expressed"
    )
    top_genes: int = Field(20, ge=1, description="genes listed by mean -log10 p (paper Figure 4)")
    map_genes: int = Field(3, ge=1, description="top genes drawn as spatial maps per held-out section")
    map_scale: Literal["per_panel", "shared"] = Field(
        "per_panel", description="per_panel: each map its own colour scale (PCC ignores scale); shared: one per gene"
    )
    map_percentiles: tuple[float, float] = Field(
        (1.0, 99.0), description="the colour scale runs from the low to the high percentile of the values"
    )

    @field_validator("map_percentiles")
    @classmethod
    def _ordered(cls, value: tuple[float, float]) -> tuple[float, float]:
        if not 0 <= value[0] < value[1] <= 100:
            raise ValueError(
                f"evaluation.map_percentiles must be two percentiles, low < high, in [0, 100]; got {value}"
            )
        return value

    compare: ComparisonParams = ComparisonParams()
