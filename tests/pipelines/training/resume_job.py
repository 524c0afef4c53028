"""A small deterministic training job: ``python -m tests.pipelines.training.resume_job STORE EPOCHS [SLEEP]``.

Used by the resume tests, in a subprocess that is killed part way and in-process to compare.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import torch

from tests.models.conftest import grid_section
from thitogene_kedro.models import build_model
from thitogene_kedro.training.checkpoints import CheckpointStore
from thitogene_kedro.training.loop import LoopResult, LoopSettings, fit, seed_everything

SECTIONS = [
    grid_section(10, seed=1, section_id="a"),
    grid_section(12, seed=2, section_id="b"),
    grid_section(9, seed=3, section_id="c"),
]


def run(store: Path | None, epochs: int, sleep: float = 0.0) -> LoopResult:
    torch.set_num_threads(1)
    seed_everything(7)
    model = build_model({"name": "thitogene", "preset": "small"}, 16)
    settings = LoopSettings(
        epochs=epochs, lr=1e-3, seed=7, checkpoint_every=1, progress_every=10**6,
        on_epoch=lambda record: time.sleep(sleep),
    )  # fmt: skip
    return fit(
        model,
        SECTIONS[:2],
        SECTIONS[2:],
        settings,
        CheckpointStore(store) if store else None,
        fingerprint="job",
    )


if __name__ == "__main__":
    run(Path(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]) if len(sys.argv) > 3 else 0.0)
