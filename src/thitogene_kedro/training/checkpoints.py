"""Training checkpoints of one fold: atomic ``epoch-<n>.pt`` files the training loop writes and resumes from."""

from __future__ import annotations

import io
import logging
import math
import os
import re
import tempfile
from dataclasses import dataclass, fields
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


@dataclass
class Checkpoint:
    """One training checkpoint: the state after ``epoch``, or (``complete``) a fold's finished result.

    Stored through :class:`CheckpointStore` as :meth:`to_dict` (plain values and tensors, loadable
    with ``weights_only=True``); :meth:`from_dict` is the only reader of that layout.
    """

    fingerprint: str
    epoch: int
    complete: bool
    model: dict[str, torch.Tensor]
    history: list[dict[str, float]]
    best_epoch: int
    optimiser: dict[str, Any] | None = None  # while training
    rng: dict[str, Any] | None = None
    best_loss: float = math.inf
    best_state: dict[str, torch.Tensor] | None = None
    stale: int = 0
    kept: dict[str, torch.Tensor] | None = None  # once complete: the weights kept
    stopped_early: bool = False
    peak_gpu_memory_mib: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}  # no deep copy of the tensors

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Checkpoint:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})
