"""Patches a data source ships with its samples (HEST-1k's ``patches/<id>.h5``), opened lazily."""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from kedro.io import AbstractDataset, DatasetError

from thitogene_kedro.sections import SectionSource
from thitogene_kedro.sections.hest import HestPatches

logger = logging.getLogger(__name__)


class StoredPatchesDataset(AbstractDataset[None, dict[str, Callable[[], HestPatches]]]):
    """``{section: HestPatches}`` (each a context manager reading one batch at a time) for the
    sections of a ``hest`` source that have a patch file; empty for every other source (read-only)."""

    def __init__(self, source: str, path: str, metadata: dict[str, Any] | None = None):
        self._source = SectionSource(source=source, path=Path(path))
        self.metadata = metadata

    def load(self) -> dict[str, Callable[[], HestPatches]]:
        if self._source.source != "hest":
            return {}
        found = {}
        for section in self._source.section_ids():
            if HestPatches(self._source.path, section).path.is_file():
                found[section] = partial(HestPatches, self._source.path, section)
            else:
                logger.debug("Section %s has no stored patches in %s", section, self._source.path / "patches")
        return found

    def save(self, data: None) -> None:
        raise DatasetError("StoredPatchesDataset is read-only")

    def _describe(self) -> dict[str, Any]:
        return {"source": self._source.source, "path": str(self._source.path)}
