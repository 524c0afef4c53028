"""A partitioned dataset whose save replaces the whole folder only once every partition is written."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from kedro_datasets.partitions import PartitionedDataset


class AtomicPartitionedDataset(PartitionedDataset):
    """``PartitionedDataset`` with ``overwrite: true`` made atomic for local folders.

    The partitions (lazy ones included: the node's work happens during the save) are written into
    a hidden staging folder beside ``path``; only when all are written does it take the place of
    the old folder. A save that fails or is interrupted removes the staging folder and leaves the
    previous partitions as the last good run wrote them. Other filesystems save as the base class.
    """

    _staging: str | None = None  # while saving: the folder partitions are written to

    @property
    def _normalized_path(self) -> str:
        return self._staging or super()._normalized_path

    def save(self, data: dict[str, Any]) -> None:
        if not self._overwrite or self._protocol != "file":
            super().save(data)
            return
        final = Path(self._filesystem._strip_protocol(self._normalized_path))
        staging, retired = final.with_name(f".{final.name}.partial"), final.with_name(f".{final.name}.old")
        shutil.rmtree(staging, ignore_errors=True)
        self._staging = str(staging)
        try:
            super().save(data)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        finally:
            self._staging = None
        shutil.rmtree(retired, ignore_errors=True)
        if final.exists():
            final.rename(retired)
        staging.rename(final)
        shutil.rmtree(retired, ignore_errors=True)
        self._invalidate_caches()
