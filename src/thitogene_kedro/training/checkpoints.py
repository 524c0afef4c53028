"""Training checkpoints of one fold: atomic ``epoch-<n>.pt`` files the training loop writes and resumes from."""

from __future__ import annotations

import io
import logging
import os
import re
import tempfile
from pathlib import Path
from typing import Any

import torch

logger = logging.getLogger(__name__)


_CHECKPOINT = re.compile(r"epoch-(\d+)\.pt$")


class CheckpointStore:
    """Atomic ``epoch-<n>.pt`` files; the newest ``keep`` are kept."""

    def __init__(self, path: Path, keep: int = 2) -> None:
        self.path = Path(path)
        self.keep = keep

    def __repr__(self) -> str:
        return f"CheckpointStore({str(self.path)!r})"

    def epochs(self) -> list[int]:
        """Epochs with a checkpoint, oldest first."""
        if not self.path.is_dir():
            return []
        return sorted(int(m.group(1)) for p in self.path.iterdir() if (m := _CHECKPOINT.search(p.name)))

    def latest(self) -> dict[str, Any] | None:
        """The newest readable checkpoint, or None; unreadable ones (a crash mid-write) are skipped."""
        for epoch in reversed(self.epochs()):
            try:
                return torch.load(self.path / f"epoch-{epoch}.pt", map_location="cpu", weights_only=True)
            except Exception as error:  # noqa: BLE001 - a torn or foreign file: fall back to the previous one
                logger.warning("Skipping unreadable checkpoint %s: %s", self.path / f"epoch-{epoch}.pt", error)
                continue
        return None

    def save(self, epoch: int, state: dict[str, Any]) -> None:
        """Write ``epoch-<epoch>.pt`` atomically (temp file, fsync, rename), then prune old ones."""
        self.path.mkdir(parents=True, exist_ok=True)
        buffer = io.BytesIO()
        torch.save(state, buffer)
        fd, tmp = tempfile.mkstemp(dir=self.path, suffix=".tmp")
        with os.fdopen(fd, "wb") as handle:
            handle.write(buffer.getvalue())
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, self.path / f"epoch-{epoch}.pt")
        for old in self.epochs()[: -self.keep]:
            (self.path / f"epoch-{old}.pt").unlink(missing_ok=True)

    def clear(self) -> None:
        """Remove every checkpoint (e.g. when the configuration changed)."""
        for epoch in self.epochs():
            (self.path / f"epoch-{epoch}.pt").unlink(missing_ok=True)
