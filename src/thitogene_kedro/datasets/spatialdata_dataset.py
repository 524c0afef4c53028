"""A SpatialData zarr store as a Kedro dataset (optional extra ``spatialdata``)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from kedro.io import AbstractDataset

from thitogene_kedro.sections.spatialdata_export import spatialdata_module


class SpatialDataZarrDataset(AbstractDataset[Any, Any]):
    """Saves a ``spatialdata.SpatialData`` as a zarr store at ``path`` (written beside it, then
    moved into place, so a failed save leaves the last good store); loads it with ``read_zarr``."""

    def __init__(self, path: str, metadata: dict[str, Any] | None = None):
        self._path = Path(path)
        self.metadata = metadata

    def load(self) -> Any:
        return spatialdata_module().read_zarr(self._path)

    def save(self, data: Any) -> None:
        staging = self._path.with_name(f".{self._path.name}.writing")
        shutil.rmtree(staging, ignore_errors=True)
        self._path.parent.mkdir(parents=True, exist_ok=True)
        try:
            data.write(staging, overwrite=True)
            shutil.rmtree(self._path, ignore_errors=True)
            staging.rename(self._path)
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    def _exists(self) -> bool:
        return self._path.is_dir()

    def _describe(self) -> dict[str, Any]:
        return {"path": str(self._path)}
