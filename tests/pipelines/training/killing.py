"""Stop a running training process with a signal once a checkpoint store reaches an epoch."""

from __future__ import annotations

import os
import signal
import subprocess
import time

import pytest

from thitogene_kedro.training.checkpoints import CheckpointStore


def kill_after_checkpoint(
    job: subprocess.Popen, store: CheckpointStore, epoch: int, timeout: float, sig: signal.Signals = signal.SIGKILL
) -> None:
    """Wait until ``store`` holds a checkpoint of at least ``epoch``, then send ``sig`` to ``job`` and wait.

    Fails the test when the job ends first or nothing arrives within ``timeout`` seconds.
    """
    deadline = time.time() + timeout
    while not store.epochs() or max(store.epochs()) < epoch:
        if job.poll() is not None:
            pytest.fail(f"the job ended before it could be killed: {job.stderr.read().decode()[-3000:]}")
        if time.time() > deadline:
            job.kill()
            pytest.fail(f"no checkpoint of epoch {epoch} in {store.path} within {timeout} s")
        time.sleep(0.05)
    os.kill(job.pid, sig)
    job.wait(timeout=120)
