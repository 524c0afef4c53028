"""Inputs of the inference pipeline: a new slide's image, an optional spot table, a registered model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
from kedro.io import AbstractDataset, DatasetError

from thitogene_kedro.sections import her2st
from thitogene_kedro.sections.images import SlideImage, read_image_header
from thitogene_kedro.sections.schema import SectionDataError
from thitogene_kedro.sections.synthetic import is_synthetic_image
from thitogene_kedro.sections.tiff_slide import TiledTiffSlide, open_slide


class SlideImageDataset(AbstractDataset[None, SlideImage | TiledTiffSlide]):
    """A slide image, checked on load: a tiled TIFF is read tile by tile, JPEG/PNG decoded when read."""

    def __init__(self, filepath: str, metadata: dict[str, Any] | None = None) -> None:
        self._path = Path(filepath)
        self.metadata = metadata

    def load(self) -> SlideImage | TiledTiffSlide:
        if not self._path.is_file():
            raise SectionDataError(self._path, None, "slide image does not exist (set inference.image)")
        slide = open_slide(self._path, self._path.stem)
        if isinstance(slide, SlideImage):
            read_image_header(self._path, None)  # raises on a file that is not a readable image
        slide.from_synthetic_demo = is_synthetic_image(self._path)
        return slide

    def save(self, data: None) -> None:
        raise DatasetError("SlideImageDataset is read-only")

    def _exists(self) -> bool:
        return self._path.is_file()

    def _describe(self) -> dict[str, Any]:
        return {"filepath": str(self._path)}


class SpotTableDataset(AbstractDataset[None, pd.DataFrame | None]):
    """Spots of a new slide, or None (then the pipeline lays a grid over the tissue).

    A her2st-style ``*_selection.tsv`` (``x, y, pixel_x, pixel_y``; ids ``"{x}x{y}"``) or a CSV
    with ``pixel_x, pixel_y`` and optionally ``array_x, array_y`` (or ``x, y``) and ``spot_id``.
    The result has ``pixel_x, pixel_y`` and, when known, ``array_x, array_y``, indexed by spot id.
    """

    def __init__(self, filepath: str | None = None, metadata: dict[str, Any] | None = None) -> None:
        self._path = Path(filepath) if filepath else None
        self.metadata = metadata

    def load(self) -> pd.DataFrame | None:
        if self._path is None:
            return None
        if not self._path.is_file():
            raise SectionDataError(self._path, None, "spot table does not exist")
        if self._path.suffix.lower() == ".tsv":
            return her2st.read_spot_table(self._path, self._path.stem)
        table = pd.read_csv(self._path)
        table = table.rename(columns={"x": "array_x", "y": "array_y"})
        missing = {"pixel_x", "pixel_y"} - set(table.columns)
        if missing:
            raise SectionDataError(self._path, None, f"spot table lacks columns {sorted(missing)}")
        spots = (
            table.set_index("spot_id")
            if "spot_id" in table
            else table.set_index(pd.Index([f"spot{i}" for i in range(len(table))]))
        )
        spots.index = spots.index.astype(str).rename("spot_id")
        columns = ["pixel_x", "pixel_y"] + [c for c in ("array_x", "array_y") if c in spots]
        if not np.isfinite(spots[["pixel_x", "pixel_y"]].to_numpy(dtype=float)).all():
            raise SectionDataError(self._path, None, "spot table has missing or non-numeric pixel coordinates")
        return spots[columns]

    def save(self, data: None) -> None:
        raise DatasetError("SpotTableDataset is read-only")

    def _describe(self) -> dict[str, Any]:
        return {"filepath": str(self._path) if self._path else None}


class RegistryModelDataset(AbstractDataset[None, dict[str, Any]]):
    """A model from the MLflow registry (``models:/<name>@<alias>`` or ``models:/<name>/<version>``).

    Loads ``{"predictor": SpotExpressionPredictor, "uri", "name", "version", "run_id", "data_source"}``
    (``data_source``: what the model was trained on, from its training run's tag; None if untagged).
    """

    def __init__(self, model_uri: str, metadata: dict[str, Any] | None = None) -> None:
        self._uri = model_uri
        self.metadata = metadata

    def load(self) -> dict[str, Any]:
        if not self._uri.startswith("models:/"):
            raise DatasetError(
                f"inference.model must be a registry URI models:/<name>@<alias> or models:/<name>/<version>, got {self._uri!r}"
            )
        reference = self._uri.removeprefix("models:/")
        client = mlflow.MlflowClient()
        if "@" in reference:
            name, alias = reference.split("@", 1)
            version = client.get_model_version_by_alias(name, alias)
        else:
            name, number = reference.rsplit("/", 1)
            version = client.get_model_version(name, number)
        pyfunc = mlflow.pyfunc.load_model(self._uri)
        tags = client.get_run(version.run_id).data.tags if version.run_id else {}
        return {
            "predictor": pyfunc.unwrap_python_model(),
            "uri": self._uri,
            "name": name,
            "version": str(version.version),
            "run_id": version.run_id,
            "data_source": tags.get("data_source"),  # tagged on the training run by the project's hooks
        }

    def save(self, data: None) -> None:
        raise DatasetError("RegistryModelDataset is read-only: models are registered by the training pipeline")

    def _describe(self) -> dict[str, Any]:
        return {"model_uri": self._uri}
