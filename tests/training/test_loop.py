"""The training loop: a run killed with SIGKILL resumes and ends exactly where an uninterrupted one does."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from tests.conftest import PROJECT_ROOT
from tests.models.conftest import grid_section
from tests.pipelines.training import resume_job
from tests.pipelines.training.killing import kill_after_checkpoint
from thitogene_kedro.models import build_model, collate_sections
from thitogene_kedro.training.checkpoints import CheckpointStore
from thitogene_kedro.training.loop import LoopResult, LoopSettings, fit, seed_everything

EPOCHS = 8


def same_weights(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_killed_run_resumes_to_the_uninterrupted_result(tmp_path):
    uninterrupted = resume_job.run(None, EPOCHS)
    store = tmp_path / "checkpoints"
    job = subprocess.Popen(
        [sys.executable, "-m", "tests.pipelines.training.resume_job", str(store), str(EPOCHS), "0.3"],
        cwd=PROJECT_ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    kill_after_checkpoint(job, CheckpointStore(store), 3, timeout=120)
    killed_at = max(CheckpointStore(store).epochs())
    assert 3 <= killed_at < EPOCHS

    resumable = CheckpointStore(store).latest()["epoch"]  # the newest readable checkpoint at the kill
    resumed = resume_job.run(store, EPOCHS)
    assert resumed.resumed_from == resumable + 1
    assert same_weights(resumed.state_dict, uninterrupted.state_dict)
    assert [r["train_loss"] for r in resumed.history] == [r["train_loss"] for r in uninterrupted.history]
    assert [r["validation_loss"] for r in resumed.history] == [r["validation_loss"] for r in uninterrupted.history]

    again = resume_job.run(store, EPOCHS)  # finished: not trained again
    assert again.resumed_from == EPOCHS and same_weights(again.state_dict, uninterrupted.state_dict)


def test_a_changed_configuration_does_not_resume(tmp_path, caplog):
    store = CheckpointStore(tmp_path)
    resume_job.run(tmp_path, 2)
    assert store.latest()["complete"]
    seed_everything(7)
    model = build_model({"name": "thitogene", "preset": "small"}, 16)
    settings = LoopSettings(epochs=2, lr=1e-3, seed=7, checkpoint_every=1)
    with caplog.at_level("INFO"):
        result = fit(model, resume_job.SECTIONS[:2], [], settings, store, fingerprint="another")
    assert result.resumed_from is None and "another configuration" in caplog.text


def test_early_stopping_keeps_the_best_validation_epoch():
    seed_everything(0)
    model = build_model({"name": "histogene", "preset": "small"}, 16)
    train, validation = [grid_section(8, seed=1)], [grid_section(8, seed=2)]
    settings = LoopSettings(epochs=40, lr=3e-2, seed=0, patience=3)
    result = fit(model, train, validation, settings)
    losses = [r["validation_loss"] for r in result.history]
    assert result.stopped_early and len(losses) < 40
    assert result.best_epoch == 1 + losses.index(min(losses))
    assert len(losses) - result.best_epoch == 3


def test_a_truncated_checkpoint_falls_back_to_the_previous_one(tmp_path):
    store = CheckpointStore(tmp_path, keep=3)
    store.save(1, {"epoch": 1})
    store.save(2, {"epoch": 2})
    (tmp_path / "epoch-2.pt").write_bytes(b"\x80\x02truncated")
    assert store.latest() == {"epoch": 1}


@pytest.mark.parametrize(
    "device",
    ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"))],
)
def test_sections_kept_on_the_device_train_exactly_as_sections_copied_each_step(device):
    """The GPU-resident data path (uint8 sections on the device) equals the host path, step for step."""
    train = [grid_section(9, seed=1), grid_section(7, seed=2), grid_section(8, seed=3)]
    results = []
    for on_device in (False, True):
        seed_everything(0)
        model = build_model({"name": "thitogene", "preset": "small"}, 16)
        settings = LoopSettings(
            epochs=3, lr=1e-3, seed=0, sections_per_step=2, device=torch.device(device), data_on_device=on_device
        )
        results.append(fit(model, train, [grid_section(6, seed=4)], settings))
    host, resident = results
    assert [r["train_loss"] for r in host.history] == [r["train_loss"] for r in resident.history]
    assert [r["validation_loss"] for r in host.history] == [r["validation_loss"] for r in resident.history]
    assert same_weights(host.state_dict, resident.state_dict)


def train_small(train: list, validation: list, **settings: object) -> tuple[LoopResult, torch.nn.Module]:
    """The small THItoGene, freshly seeded, trained 3 epochs with ``settings``."""
    seed_everything(0)
    model = build_model({"name": "thitogene", "preset": "small"}, 16)
    return fit(model, train, validation, LoopSettings(epochs=3, lr=1e-3, seed=0, **settings)), model


def assert_same_training(first: LoopResult, second: LoopResult) -> None:
    assert [r["train_loss"] for r in first.history] == [r["train_loss"] for r in second.history]
    assert same_weights(first.state_dict, second.state_dict)


def test_stepping_in_the_backward_pass_trains_exactly_as_one_optimiser():
    """Adam per parameter during backward (gradients freed at once) equals Adam after backward."""
    train = [grid_section(9, seed=1), grid_section(7, seed=2)]
    results = []
    for in_backward in (False, True):
        result, model = train_small(train, [grid_section(6, seed=4)], step_in_backward=in_backward)
        results.append(result)
        # after fit the hooks are gone: a backward pass leaves its gradients in place
        batch = collate_sections(train[:1])
        model.train().loss_terms(batch, model(batch))["loss"].backward()
        assert all(p.grad is not None for p in model.parameters() if p.requires_grad)
    assert_same_training(*results)


def test_reusing_freed_host_memory_trains_exactly_the_same():
    """The allocator setting changes where memory comes from, never a value."""
    train = [grid_section(9, seed=1), grid_section(7, seed=2)]
    assert_same_training(*(train_small(train, [], reuse_freed_host_memory=reuse)[0] for reuse in (False, True)))
