"""Raw spatial transcriptomics sections of one data source, read lazily section by section."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anndata as ad
from kedro.io import AbstractDataset, DatasetError

from thitogene_kedro.sections import SectionSource


class SectionCollection(dict[str, Callable[[], ad.AnnData]]):
    """``{section: load function}`` that also knows its :class:`SectionSource` (patients, name) and
    when its files last changed (``modified``, UTC, or ``""`` where unknown)."""

    def __init__(self, source: SectionSource, loaders: dict[str, Callable[[], ad.AnnData]], modified: str = "") -> None:
        super().__init__(loaders)
        self.source = source
        self.modified = modified


def newest_modification(path: Path, limit: int = 20000) -> str:
    """The latest modification time of the files under ``path`` (the first ``limit`` found), UTC."""
    if not path.exists():
        return ""
    times = [p.stat().st_mtime for _, p in zip(range(limit), path.rglob("*"), strict=False) if p.is_file()]
    return datetime.fromtimestamp(max(times), UTC).strftime("%Y-%m-%d %H:%M UTC") if times else ""


class SpatialSectionsDataset(AbstractDataset[None, SectionCollection]):
    """Every section of a data source as ``{section: load function}`` (read-only).

    Like Kedro's ``PartitionedDataset``, loading lists the sections and returns one function per
    section that reads it into the project's AnnData schema, so a node reads only the sections it
    needs, one at a time.

    Example catalog entry::

        raw_sections:
          type: thitogene_kedro.datasets.SpatialSectionsDataset
          source: her2st            # her2st | cscc | visium | hest | synthetic
          path: data/01_raw/her2st
          options: {}               # source-specific (visium: fullres_image_glob; synthetic: generator settings)
    """

    def __init__(
        self, source: str, path: str, options: dict[str, Any] | None = None, metadata: dict[str, Any] | None = None
    ):
        self._source = SectionSource(source=source, path=Path(path), options=dict(options or {}))
        self.metadata = metadata

    def load(self) -> SectionCollection:
        return SectionCollection(self._source, self._source.loaders(), newest_modification(self._source.path))

    @property
    def source(self) -> SectionSource:
        """The data source this dataset reads (section ids and patients without reading counts)."""
        return self._source

    def save(self, data: None) -> None:
        raise DatasetError("SpatialSectionsDataset is read-only: raw data is never written by the pipelines")

    def _describe(self) -> dict[str, Any]:
        return {"source": self._source.source, "path": str(self._source.path), "options": self._source.options}
