"""Readers that turn each supported data source into one AnnData per tissue section."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import anndata as ad

from thitogene_kedro.sections import cscc, her2st, hest, synthetic, visium
from thitogene_kedro.sections.schema import SectionDataError

SOURCES = ("her2st", "cscc", "visium", "hest", "synthetic")
# options only the tissue previews read (a her2st copy's previews carry no scale of their own)
PREVIEW_OPTIONS = ("preview_scales",)


@dataclass(frozen=True)
class SectionSource:
    """One data source at one location: lists its sections, reads them, finds their images."""

    source: str
    path: Path
    options: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.source not in SOURCES:
            raise ValueError(f"unknown data source {self.source!r}; expected one of {SOURCES}")
        allowed = {"visium": {"fullres_image_glob"}, "her2st": set(PREVIEW_OPTIONS),
                   "synthetic": set(synthetic.SyntheticConfig.model_fields)}  # fmt: skip
        unknown = set(self.options) - allowed.get(self.source, set())
        if unknown:
            raise ValueError(f"options {sorted(unknown)} do not apply to source {self.source!r}")

    def _module_args(self) -> tuple[Any, tuple, dict]:
        if self.source == "synthetic":
            return synthetic, (synthetic.SyntheticConfig(**self.options),), {}
        options = {k: v for k, v in self.options.items() if k not in PREVIEW_OPTIONS}
        return {"her2st": her2st, "cscc": cscc, "visium": visium, "hest": hest}[self.source], (), options

    def section_ids(self) -> list[str]:
        """Every section this source holds, sorted."""
        module, args, _ = self._module_args()
        return module.section_ids(self.path, *args)

    def read(self, section: str) -> ad.AnnData:
        """One section in the project schema."""
        module, args, kwargs = self._module_args()
        return module.read_section(self.path, section, *args, **kwargs)

    def image_path(self, section: str) -> Path | None:
        """The section's full-resolution image, or ``None``."""
        module, args, kwargs = self._module_args()
        return module.image_path(self.path, section, *args, **kwargs)

    def preview(self, section: str) -> tuple[Path, float] | None:
        """The section's tissue preview and its scale (preview px per full-resolution px), or ``None``
        (``preview_background`` says whether its background is black).

        her2st: ``app/www/imgs`` with the ``preview_scales`` table; Visium: Space Ranger's hires
        image; cSCC and the synthetic demo: none.
        """
        if self.source == "her2st":
            return her2st.preview(self.path, section, self.options.get("preview_scales"))
        if self.source == "visium":
            return visium.preview(self.path, section)
        return None

    @property
    def preview_background(self) -> str:
        """``black`` for her2st's app previews (tissue on black), else ``white`` (as scanned)."""
        return "black" if self.source == "her2st" else "white"

    def patient_of(self, section: str) -> str:
        """The patient a section comes from, without reading the section.

        her2st and synthetic: the patient folder (letter); cSCC: the ``P<n>`` prefix; HEST: the
        metadata's ``patient`` (its JSON only); Visium: the section itself (one section per patient
        unless a study says otherwise).
        """
        if self.source == "synthetic":
            return dict(synthetic.section_names(synthetic.SyntheticConfig(**self.options)))[section]
        if self.source == "her2st":
            return her2st.patient_of(section)
        if self.source == "cscc":
            return cscc.patient_of(section)
        if self.source == "hest":
            return hest.patient_of(self.path, section)
        return section

    def loaders(self) -> dict[str, partial]:
        """Lazy per-section readers, in the style of Kedro's PartitionedDataset."""
        return {section: partial(self.read, section) for section in self.section_ids()}


__all__ = ["SOURCES", "SectionDataError", "SectionSource"]
