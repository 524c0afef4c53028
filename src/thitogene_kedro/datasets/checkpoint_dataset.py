"""Training checkpoints of one fold: a folder the training loop writes to while it runs."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from kedro.io import AbstractDataset, DatasetError

from thitogene_kedro.training.checkpoints import CheckpointStore

logger = logging.getLogger(__name__)


class CheckpointDataset(AbstractDataset[None, CheckpointStore]):
    """Loads a :class:`CheckpointStore` on ``path``; the node writes checkpoints through it.

    Example catalog entry::

        "{fold}.checkpoints":
          type: thitogene_kedro.datasets.CheckpointDataset
          path: data/06_models/checkpoints/{fold}
    """

    def __init__(self, path: str, keep: int = 2, metadata: dict[str, Any] | None = None) -> None:
        self._path = Path(path)
        self._keep = keep
        self.metadata = metadata

    def load(self) -> CheckpointStore:
        return CheckpointStore(self._path, self._keep)

    def save(self, data: None) -> None:
        raise DatasetError("CheckpointDataset is written through the CheckpointStore it loads")

    def _exists(self) -> bool:
        return True

    def _describe(self) -> dict[str, Any]:
        return {"path": str(self._path), "keep": self._keep}
