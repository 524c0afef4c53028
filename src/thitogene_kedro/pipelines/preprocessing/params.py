"""Validated parameters of the preprocessing pipeline (``conf/base/parameters_preprocessing.yml``)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator


class GeneSelectionParams(BaseModel):
    """How the target genes are chosen.

    ``file``: the configured gene list, in its order. ``hvg_cut``: the reference rule — the top
    ``n_top_hvg`` highly variable genes of each training section, then genes expressed (count > 0)
    in more than ``min_spots_expressed`` training spots. ``auto``: the file when one is
    configured, else the rule.
    """

    model_config = ConfigDict(extra="forbid")

    method: Literal["auto", "file", "hvg_cut"] = "auto"
    n_top_hvg: int = Field(1000, gt=0)
    min_spots_expressed: int = Field(1000, ge=0)
    hvg_flavor: Literal["seurat", "cell_ranger"] = "seurat"


class NormalisationParams(BaseModel):
    """Target transform ``log_b(1 + scale * x / library)`` per spot.

    ``reference`` (default): log10, scale 1e4, library = sum over the selected genes, which is what
    the reference code computes (scprep 1.2.3) and what the published numbers come from.
    ``paper_cpm_ln``: the paper's wording, counts per million over the spot's total counts, then
    natural log.
    """

    model_config = ConfigDict(extra="forbid")

    method: Literal["reference", "paper_cpm_ln"] = "reference"
    zero_library: Literal["keep", "drop"] = Field(
        "keep", description="spots whose library is 0: keep as all-zero targets (reference) or drop them"
    )


class PreprocessingParams(BaseModel):
    """Top-level ``preprocessing`` parameters.

    ``sections``: ``all`` (every section of the source), ``paper`` (the published protocol's sections
    that the data holds, e.g. her2st A2–G3; absent ones are logged) or a list.
    ``sections`` and ``held_out_sections`` take a list, or (for ``kedro run --params``, where commas
    separate parameters) one string of section ids separated by spaces: ``"B4 C2 C3"``.
    """

    model_config = ConfigDict(extra="forbid")

    sections: Literal["all", "paper"] | list[str] = "all"
    held_out_sections: list[str] = Field(default_factory=list, description="test sections: never used to select genes")

    @field_validator("sections", "held_out_sections", mode="before")
    @classmethod
    def _split_string(cls, value):
        if isinstance(value, str) and value not in {"all", "paper"}:
            return value.split()
        return value

    gene_selection: GeneSelectionParams = GeneSelectionParams()
    normalisation: NormalisationParams = NormalisationParams()
