"""NumPy arrays as ``.npy`` (one array) or ``.npz`` (a dict of named arrays)."""

from __future__ import annotations

import io
from pathlib import PurePosixPath
from typing import Any

import fsspec
import numpy as np
from kedro.io.core import AbstractVersionedDataset, DatasetError, Version, get_filepath_str, get_protocol_and_path


class NumpyDataset(AbstractVersionedDataset[Any, Any]):
    """An array (``.npy``) or a mapping of arrays (``.npz``), chosen by the file's suffix.

    Pickled objects are refused on load, so a file can only hold plain arrays.
    """

    def __init__(self, filepath: str, version: Version | None = None, metadata: dict[str, Any] | None = None):
        protocol, path = get_protocol_and_path(filepath, version)
        self._protocol = protocol
        self._fs = fsspec.filesystem(protocol)
        self.metadata = metadata
        super().__init__(PurePosixPath(path), version, exists_function=self._fs.exists, glob_function=self._fs.glob)

    @property
    def _is_archive(self) -> bool:
        if self._filepath.suffix not in {".npy", ".npz"}:
            raise DatasetError(f"NumpyDataset needs a .npy or .npz file, got {self._filepath}")
        return self._filepath.suffix == ".npz"

    def load(self) -> np.ndarray | dict[str, np.ndarray]:
        path = get_filepath_str(self._get_load_path(), self._protocol)
        with self._fs.open(path, "rb") as handle:
            buffer = io.BytesIO(handle.read())
        if self._is_archive:
            with np.load(buffer, allow_pickle=False) as archive:
                return {key: archive[key] for key in archive.files}
        return np.load(buffer, allow_pickle=False)

    def save(self, data: np.ndarray | dict[str, np.ndarray]) -> None:
        buffer = io.BytesIO()
        if self._is_archive:
            if not isinstance(data, dict):
                raise DatasetError(f"{self._filepath}: a .npz file holds a dict of arrays, got {type(data).__name__}")
            np.savez(buffer, **{key: np.asarray(value) for key, value in data.items()})
        else:
            np.save(buffer, np.asarray(data), allow_pickle=False)
        path = get_filepath_str(self._get_save_path(), self._protocol)
        self._fs.makedirs(str(PurePosixPath(path).parent), exist_ok=True)
        with self._fs.open(path, "wb") as handle:
            handle.write(buffer.getvalue())
        self._fs.invalidate_cache(path)

    def _exists(self) -> bool:
        try:
            path = get_filepath_str(self._get_load_path(), self._protocol)
        except DatasetError:
            return False
        return self._fs.exists(path)

    def _describe(self) -> dict[str, Any]:
        return {"filepath": self._filepath, "protocol": self._protocol, "version": self._version}
