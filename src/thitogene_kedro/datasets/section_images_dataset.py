"""H&E images of a data source, opened lazily: full resolution (decoded as uint8 only on use) and
the tissue previews that draw the tissue where the full-resolution image is absent."""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from kedro.io import AbstractDataset, DatasetError

from thitogene_kedro.sections import SectionSource
from thitogene_kedro.sections.images import SlideImage, TissuePreview
from thitogene_kedro.sections.tiff_slide import TiledTiffSlide, open_slide

logger = logging.getLogger(__name__)


class SectionImagesDataset(AbstractDataset[None, dict[str, Callable[[], SlideImage | TiledTiffSlide]]]):
    """``{section: open function}`` for every section of the source that has an image (read-only).

    Sections without an image are absent from the mapping (and logged), so pixel work skips them
    while their counts stay usable. A tiled (pyramidal) TIFF is read tile by tile, any other image
    decoded whole (``sections.tiff_slide.open_slide``).
    """

    def __init__(
        self, source: str, path: str, options: dict[str, Any] | None = None, metadata: dict[str, Any] | None = None
    ):
        self._source = SectionSource(source=source, path=Path(path), options=dict(options or {}))
        self.metadata = metadata

    def load(self) -> dict[str, Callable[[], SlideImage | TiledTiffSlide]]:
        images = {}
        for section in self._source.section_ids():
            path = self._source.image_path(section)
            if path is None:
                logger.debug("Section %s has no image in %s", section, self._source.path)
                continue
            images[section] = partial(open_slide, path, section)
        return images

    def save(self, data: None) -> None:
        raise DatasetError("SectionImagesDataset is read-only")

    def _describe(self) -> dict[str, Any]:
        return {"source": self._source.source, "path": str(self._source.path)}


class SectionPreviewsDataset(SectionImagesDataset):
    """``{section: open function}`` of each section's tissue preview (``SectionSource.preview``),
    for sections without a full-resolution image (read-only).

    Previews draw the tissue in the spatial layout and the figures; nothing cuts patches from them.
    """

    def load(self) -> dict[str, Callable[[], TissuePreview]]:  # type: ignore[override]
        previews = {}
        for section in self._source.section_ids():
            if self._source.image_path(section) is not None:
                continue
            found = self._source.preview(section)
            if found is not None:
                black = self._source.preview_background == "black"
                previews[section] = partial(TissuePreview, found[0], found[1], section, black_background=black)
        if previews:
            logger.info("Tissue previews (no full-resolution image) for %d section(s): %s", len(previews),
                        sorted(previews))  # fmt: skip
        return previews
