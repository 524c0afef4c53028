"""A PNG figure: saved from and loaded as a PIL image, previewed in kedro-viz."""

from __future__ import annotations

import base64

from kedro.io.core import get_filepath_str
from kedro_datasets._typing import ImagePreview
from kedro_datasets.pillow import ImageDataset


class FigureDataset(ImageDataset):
    """kedro-datasets' ``pillow.ImageDataset`` plus kedro-viz's image preview.

    Figures stay loadable (the report embeds them) and show in kedro-viz's dataset panel.
    """

    def preview(self) -> ImagePreview:
        """The PNG as base64, for kedro-viz."""
        load_path = get_filepath_str(self._get_load_path(), self._protocol)
        with self._fs.open(load_path, mode="rb") as handle:
            return ImagePreview(base64.b64encode(handle.read()).decode("utf-8"))
