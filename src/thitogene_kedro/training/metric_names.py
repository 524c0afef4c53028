"""MLflow metric names of held-out scores: formed and parsed here only.

A fold's held-out metrics are logged by the catalog entry ``<fold>.test_metrics`` (prefix
``<fold>.test``) as ``<fold>.test.<section>.<score>``.
"""

from __future__ import annotations

HELD_OUT_SCORES = ("pcc_mean", "pcc_median", "pcc_mean_nan_dropped", "mse", "mae")


def held_out_key(section: str, score: str) -> str:
    """The key a fold's ``test_metrics`` output uses (the dataset adds the ``<fold>.test`` prefix)."""
    return f"{section}.{score}"


def held_out_prefix(fold: str) -> str:
    return f"{fold}.test"


def parse_held_out(fold: str, name: str) -> tuple[str, str] | None:
    """``(section, score)`` of a logged metric ``<fold>.test.<section>.<score>``, or None for other metrics."""
    prefix = held_out_prefix(fold) + "."
    if not name.startswith(prefix):
        return None
    section, _, score = name.removeprefix(prefix).rpartition(".")
    return (section, score) if section and score in HELD_OUT_SCORES else None
