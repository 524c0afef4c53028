"""AnnData ``.h5ad`` files as a versioned Kedro dataset."""

from __future__ import annotations

from typing import Any

import anndata as ad
from kedro.io.core import DatasetError, Version

from thitogene_kedro.datasets._versioned_file import VersionedFileDataset


class AnnDataDataset(VersionedFileDataset[ad.AnnData, ad.AnnData]):
    """Loads and saves an :class:`anndata.AnnData` as ``.h5ad`` (local files).

    Example catalog entry::

        section:
          type: thitogene_kedro.datasets.AnnDataDataset
          filepath: data/02_intermediate/section.h5ad
    """

    def __init__(
        self,
        filepath: str,
        save_args: dict[str, Any] | None = None,
        version: Version | None = None,
        metadata: dict[str, Any] | None = None,
    ):
        super().__init__(filepath, version, metadata)
        if self._protocol != "file":
            raise DatasetError(f"AnnDataDataset reads local files only, not {self._protocol!r}: {filepath}")
        self._save_args = {"compression": "gzip", **(save_args or {})}

    def load(self) -> ad.AnnData:
        return ad.read_h5ad(self._load_path())

    def save(self, data: ad.AnnData) -> None:
        if not isinstance(data, ad.AnnData):
            raise DatasetError(f"AnnDataDataset expects an AnnData, got {type(data).__name__}")
        with self._writing() as path:
            data.write_h5ad(path, **self._save_args)
        self._invalidate_cache()
