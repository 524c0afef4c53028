"""Validated parameters of the preprocessing pipeline (``conf/base/parameters_preprocessing.yml``)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator

from thitogene_kedro.processing.genes import GeneSelectionParams
from thitogene_kedro.processing.normalisation import NormalisationParams
from thitogene_kedro.sections.choice import SectionChoice

__all__ = ["GeneSelectionParams", "NormalisationParams", "PreprocessingParams"]


class PreprocessingParams(BaseModel):
    """Top-level ``preprocessing`` parameters.

    ``sections``: ``all`` (every section of the source), ``paper`` (the published protocol's sections
    that the data holds, e.g. her2st A2–G3; absent ones are logged) or a list.
    ``sections`` and ``gene_selection_excludes`` take a list, or (for ``kedro run --params``, where commas
    separate parameters) one string of section ids separated by spaces: ``"B4 C2 C3"``.
    """

    model_config = ConfigDict(extra="forbid")

    sections: SectionChoice = "all"
    gene_selection_excludes: list[str] = Field(
        default_factory=list,
        description="sections the global gene selection (03_primary/selected_genes.csv) never looks at; "
        "each training fold selects its own genes without its test sections (training.cv)",
    )

    @field_validator("sections", "gene_selection_excludes", mode="before")
    @classmethod
    def _split_string(cls, value):
        if isinstance(value, str) and value not in {"all", "paper"}:
            return value.split()
        return value

    gene_selection: GeneSelectionParams = GeneSelectionParams()
    normalisation: NormalisationParams = NormalisationParams()
