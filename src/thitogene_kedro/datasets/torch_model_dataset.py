"""A trained model as one file: its configuration, genes and weights (``torch.save``, tensors only)."""

from __future__ import annotations

import io
from typing import Any

import torch

from thitogene_kedro.datasets._versioned_file import VersionedFileDataset


class TorchModelDataset(VersionedFileDataset[dict[str, Any], dict[str, Any]]):
    """``{"state_dict": ..., "config": ..., "genes": [...], ...}`` saved with ``torch.save``.

    Loading uses ``weights_only=True``: the file can hold tensors and plain Python values, never
    arbitrary pickled objects.
    """

    def load(self) -> dict[str, Any]:
        with self._fs.open(self._load_path(), "rb") as handle:
            return torch.load(io.BytesIO(handle.read()), map_location="cpu", weights_only=True)

    def save(self, data: dict[str, Any]) -> None:
        buffer = io.BytesIO()
        torch.save(data, buffer)
        with self._fs.open(self._save_path(), "wb") as handle:
            handle.write(buffer.getvalue())
        self._invalidate_cache()
