"""The partitions already in a folder, or none (a cache read before its first write)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from kedro.io import DatasetError
from kedro_datasets.partitions import PartitionedDataset


class PartitionCacheDataset(PartitionedDataset):
    """``PartitionedDataset`` read as a cache: ``{partition: load}`` of what is there, ``{}`` for an
    empty or absent folder (read-only; the pipeline's output entry on the same folder writes)."""

    def load(self) -> dict[str, Callable[[], Any]]:
        if not self._list_partitions():
            return {}
        return super().load()

    def save(self, data: dict[str, Any]) -> None:
        raise DatasetError("PartitionCacheDataset is read-only; save through the output entry on the same folder")
