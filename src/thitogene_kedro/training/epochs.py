"""Each epoch's record, as it ends, to whoever listens: the loop reports, a caller listens.

The training loop calls the listener set in :data:`EPOCH_LISTENER` (a context variable, so it
holds for the code running in that context only) with each epoch's record. The project's MLflow
hook sets one around each fold's training node and logs the record as metrics, so a long fold can
be watched converging. Torch-free: the CLI imports it.
"""

from __future__ import annotations

from collections.abc import Callable
from contextvars import ContextVar

# The per-epoch numbers of a record (besides ``epoch``), as MLflow records them: ``<fold>.<name>``.
EPOCH_METRICS = ("train_loss", "validation_loss", "seconds", "spots_per_second")

EPOCH_LISTENER: ContextVar[Callable[[dict[str, float]], None] | None] = ContextVar("epoch_listener", default=None)


def epoch_metrics(prefix: str, record: dict[str, float]) -> dict[str, float]:
    """The metrics of one epoch's ``record`` under their MLflow names (``<prefix>.<name>``)."""
    return {f"{prefix}.{name}": float(record[name]) for name in EPOCH_METRICS if name in record}
