"""NumPy arrays as ``.npy`` (one array) or ``.npz`` (a dict of named arrays)."""

from __future__ import annotations

import io

import numpy as np
from kedro.io.core import DatasetError

from thitogene_kedro.datasets._versioned_file import VersionedFileDataset


class NumpyDataset(VersionedFileDataset[np.ndarray | dict[str, np.ndarray], np.ndarray | dict[str, np.ndarray]]):
    """An array (``.npy``) or a mapping of arrays (``.npz``), chosen by the file's suffix.

    Pickled objects are refused on load, so a file can only hold plain arrays.
    """

    @property
    def _is_archive(self) -> bool:
        if self._filepath.suffix not in {".npy", ".npz"}:
            raise DatasetError(f"NumpyDataset needs a .npy or .npz file, got {self._filepath}")
        return self._filepath.suffix == ".npz"

    def load(self) -> np.ndarray | dict[str, np.ndarray]:
        with self._fs.open(self._load_path(), "rb") as handle:
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
        with self._writing() as path, self._fs.open(path, "wb") as handle:
            handle.write(buffer.getvalue())
        self._invalidate_cache()
