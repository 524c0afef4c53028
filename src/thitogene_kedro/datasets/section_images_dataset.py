"""Full-resolution H&E images of a data source, opened lazily and decoded as uint8 only on use."""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from kedro.io import AbstractDataset, DatasetError

from thitogene_kedro.sections import SectionSource
from thitogene_kedro.sections.images import SlideImage

logger = logging.getLogger(__name__)


class SectionImagesDataset(AbstractDataset[None, dict[str, Callable[[], SlideImage]]]):
    """``{section: open function}`` for every section of the source that has an image (read-only).

    Sections without an image are absent from the mapping (and logged), so pixel work skips them
    while their counts stay usable.
    """

    def __init__(
        self, source: str, path: str, options: dict[str, Any] | None = None, metadata: dict[str, Any] | None = None
    ):
        self._source = SectionSource(source=source, path=Path(path), options=dict(options or {}))
        self.metadata = metadata

    def load(self) -> dict[str, Callable[[], SlideImage]]:
        images = {}
        for section in self._source.section_ids():
            path = self._source.image_path(section)
            if path is None:
                logger.debug("Section %s has no image in %s", section, self._source.path)
                continue
            images[section] = partial(SlideImage, path, section)
        return images

    def save(self, data: None) -> None:
        raise DatasetError("SectionImagesDataset is read-only")

    def _describe(self) -> dict[str, Any]:
        return {"source": self._source.source, "path": str(self._source.path)}
