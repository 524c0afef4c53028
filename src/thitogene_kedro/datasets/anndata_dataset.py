"""AnnData ``.h5ad`` files as a versioned Kedro dataset."""

from __future__ import annotations

from pathlib import PurePosixPath
from typing import Any

import anndata as ad
import fsspec
from kedro.io.core import AbstractVersionedDataset, DatasetError, Version, get_filepath_str, get_protocol_and_path


class AnnDataDataset(AbstractVersionedDataset[ad.AnnData, ad.AnnData]):
    """Loads and saves an :class:`anndata.AnnData` as ``.h5ad``.

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
        protocol, path = get_protocol_and_path(filepath, version)
        self._protocol = protocol
        self._fs = fsspec.filesystem(protocol)
        self._save_args = {"compression": "gzip", **(save_args or {})}
        self.metadata = metadata
        super().__init__(
            filepath=PurePosixPath(path),
            version=version,
            exists_function=self._fs.exists,
            glob_function=self._fs.glob,
        )

    def load(self) -> ad.AnnData:
        path = get_filepath_str(self._get_load_path(), self._protocol)
        if self._protocol != "file":
            raise DatasetError(f"AnnDataDataset reads local files only, not {self._protocol!r}: {path}")
        return ad.read_h5ad(path)

    def save(self, data: ad.AnnData) -> None:
        if not isinstance(data, ad.AnnData):
            raise DatasetError(f"AnnDataDataset expects an AnnData, got {type(data).__name__}")
        path = get_filepath_str(self._get_save_path(), self._protocol)
        self._fs.makedirs(str(PurePosixPath(path).parent), exist_ok=True)
        data.write_h5ad(path, **self._save_args)
        self._invalidate_cache()

    def _exists(self) -> bool:
        try:
            path = get_filepath_str(self._get_load_path(), self._protocol)
        except DatasetError:
            return False
        return self._fs.exists(path)

    def _describe(self) -> dict[str, Any]:
        return {"filepath": self._filepath, "protocol": self._protocol, "version": self._version}

    def _invalidate_cache(self) -> None:
        self._fs.invalidate_cache(get_filepath_str(self._filepath, self._protocol))
