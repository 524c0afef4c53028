"""The training loop: seeded, checkpointed, resumable, with early stopping and progress lines.

Resuming: every ``checkpoint_every`` epochs the model, optimiser, RNG states, history and
early-stopping state are written atomically. A restart with the same configuration (same
``fingerprint``) continues after the newest checkpoint; section order per epoch is drawn from
``(seed, epoch)``, so a resumed run on CPU repeats the uninterrupted one exactly. A finished
fold leaves a checkpoint marked ``complete`` and is not trained again.

Each epoch's record goes, as the epoch ends, to ``LoopSettings.on_epoch`` and to whoever set
:data:`~thitogene_kedro.training.epochs.EPOCH_LISTENER` around the call (the project's MLflow hook
logs it as metrics then).
"""

from __future__ import annotations

import copy
import functools
import logging
import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import torch

from thitogene_kedro.errors import RunInterrupted
from thitogene_kedro.models import SectionExample, SpotExpressionModel, autocast, collate_sections, examples_on
from thitogene_kedro.models.runtime import Precision, resolve_host_memory_reuse, reuse_freed_host_memory
from thitogene_kedro.training.checkpoints import Checkpoint, CheckpointStore
from thitogene_kedro.training.epochs import EPOCH_LISTENER

logger = logging.getLogger(__name__)


@dataclass
class LoopSettings:
    """What the loop needs besides the model and data (built from ``TrainingParams``)."""

    epochs: int
    lr: float
    weight_decay: float = 0.0
    optimiser: str = "adam"
    step_in_backward: bool = False
    sections_per_step: int = 1
    seed: int = 0
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    precision: Precision = "fp32"
    checkpoint_every: int = 10
    progress_every: int = 0
    patience: int | None = None
    min_delta: float = 0.0
    label: str = "fold"
    data_on_device: bool = False
    reuse_freed_host_memory: bool | Literal["auto"] = "auto"
    on_epoch: Callable[[dict[str, float]], None] | None = None  # called with each epoch's record as it ends
    description: str = ""  # what is trained, logged when training starts (not for a reused fold)


@dataclass
class LoopResult:
    """The kept weights, the per-epoch history and what happened."""

    state_dict: dict[str, torch.Tensor]
    history: list[dict[str, float]]
    best_epoch: int
    stopped_early: bool
    resumed_from: int | None
    peak_gpu_memory_mib: float | None
    reused: bool = False  # a finished fold's stored result, not trained again


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and PyTorch (CPU and CUDA)."""
    random.seed(seed)
    np.random.seed(seed)  # noqa: NPY002 - third-party code may use the legacy global state
    torch.manual_seed(seed)


class StepInBackward:
    """One optimiser per parameter, stepped by a hook as soon as that parameter's gradient is
    complete, which then frees the gradient: the model's gradients never all exist at once.

    The update is the optimiser's own, parameter by parameter (Adam's is elementwise), so training
    is the same as with one optimiser as long as each step has one backward pass (as here).
    ``step``/``zero_grad`` are no-ops; the state dict is the per-parameter optimisers' in order.
    """

    def __init__(self, parameters: Sequence[torch.nn.Parameter], build: Callable) -> None:
        self.optimisers = [build([p]) for p in parameters]
        self.hooks = [
            p.register_post_accumulate_grad_hook(lambda p, optimiser=o: self._step(p, optimiser))
            for p, o in zip(parameters, self.optimisers, strict=True)
        ]

    @staticmethod
    def _step(parameter: torch.nn.Parameter, optimiser: torch.optim.Optimizer) -> None:
        optimiser.step()
        parameter.grad = None

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Gradients are freed as they are used."""

    def step(self) -> None:
        """Each parameter was stepped during the backward pass."""

    def state_dict(self) -> dict[str, Any]:
        return {"per_parameter": [o.state_dict() for o in self.optimisers]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for optimiser, saved in zip(self.optimisers, state["per_parameter"], strict=True):
            optimiser.load_state_dict(saved)

    def remove(self) -> None:
        """Detach the hooks (the model may be trained again with another optimiser)."""
        for hook in self.hooks:
            hook.remove()


def make_optimiser(model: torch.nn.Module, settings: LoopSettings) -> torch.optim.Optimizer | StepInBackward:
    """Adam or AdamW, the fused kernel (one pass over each parameter, CPU and CUDA; same update rule);
    with ``step_in_backward``, one per parameter stepped during the backward pass."""
    cls = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW}[settings.optimiser]
    build = functools.partial(cls, lr=settings.lr, weight_decay=settings.weight_decay, fused=True)
    parameters = [p for p in model.parameters() if p.requires_grad]
    return StepInBackward(parameters, build) if settings.step_in_backward else build(parameters)


def _batches(n: int, size: int, seed: int, epoch: int) -> list[list[int]]:
    order = np.random.default_rng([seed, epoch]).permutation(n)
    return [order[i : i + size].tolist() for i in range(0, n, size)]


def _cpu_rng_state() -> dict[str, Any]:
    state: dict[str, Any] = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _restore_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def evaluate_loss(model: SpotExpressionModel, examples: Sequence[SectionExample], settings: LoopSettings) -> float:
    """Mean MSE over sections, in eval mode, one section at a time."""
    model.eval()
    losses = []
    with torch.no_grad():
        for example in examples:
            batch = collate_sections([example]).to(settings.device)
            with autocast(settings.device, settings.precision):
                output = model(batch)
            losses.append(model.mse(batch, output).item())
    return float(np.mean(losses))


def fit(
    model: SpotExpressionModel,
    train: Sequence[SectionExample],
    validation: Sequence[SectionExample],
    settings: LoopSettings,
    checkpoints: CheckpointStore | None = None,
    fingerprint: str = "",
) -> LoopResult:
    """Train ``model`` on ``train`` sections; see the module docstring for resuming.

    The model must be freshly built after :func:`seed_everything` ``(settings.seed)``.
    """
    if getattr(model, "fits_in_closed_form", False):
        return _fit_closed_form(model, train, settings, _Checkpoints(checkpoints, fingerprint))
    spots_per_step = max((e.n_spots for e in train), default=0) * settings.sections_per_step
    with reuse_freed_host_memory(resolve_host_memory_reuse(settings.reuse_freed_host_memory, spots_per_step)):
        return _fit(model, train, validation, settings, _Checkpoints(checkpoints, fingerprint))


def _fit_closed_form(model, train: Sequence[SectionExample], settings: LoopSettings, checkpoints) -> LoopResult:
    """A model fitted in closed form (the linear probe): one fit on the training sections, recorded
    as epoch 1 (its training MSE), with a completed checkpoint like any trained fold."""
    saved = checkpoints.saved(settings.label)
    if saved is not None and saved.complete:
        return _reused(saved, model, settings)
    logger.info("%s: fitting%s", settings.label, f" ({settings.description})" if settings.description else "")
    started = time.perf_counter()
    details = model.fit_closed_form(train)
    seconds = time.perf_counter() - started
    model.to(settings.device)
    record = {"epoch": 1, "train_loss": evaluate_loss(model, train, settings), "seconds": seconds,
              "spots_per_second": sum(e.n_spots for e in train) / max(seconds, 1e-9)}  # fmt: skip
    record |= {k: float(v) for k, v in details.items() if isinstance(v, int | float)}
    for listener in (settings.on_epoch, EPOCH_LISTENER.get()):
        if listener is not None:
            listener(record)
    kept = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    checkpoints.save(1, complete=True, model=kept, kept=kept, history=[record], best_epoch=1, stopped_early=False,
                     peak_gpu_memory_mib=None)  # fmt: skip
    return LoopResult(kept, [record], 1, False, None, None)


@dataclass
class _Checkpoints:
    """The fold's checkpoint store and the fingerprint of the configuration its checkpoints belong to."""

    store: CheckpointStore | None
    fingerprint: str

    def saved(self, label: str) -> Checkpoint | None:
        """The newest checkpoint of this configuration, or None (checkpoints of another one are cleared)."""
        saved = self.store.latest() if self.store is not None else None
        if saved is not None and saved.get("fingerprint") != self.fingerprint:
            logger.info("%s: checkpoints in %s are from another configuration; starting afresh", label, self.store)
            self.store.clear()
            return None
        return Checkpoint.from_dict(saved) if saved is not None else None

    def save(self, epoch: int, **state: Any) -> None:
        if self.store is not None:
            self.store.save(epoch, Checkpoint(fingerprint=self.fingerprint, epoch=epoch, **state).to_dict())


@dataclass
class _LoopState:
    """What the loop carries from epoch to epoch (and through a checkpoint)."""

    history: list[dict[str, float]] = field(default_factory=list)
    best: dict[str, Any] = field(default_factory=lambda: {"loss": math.inf, "epoch": 0, "state": None})
    stale: int = 0
    start_epoch: int = 1
    resumed_from: int | None = None
    stopped_early: bool = False
    checkpoint_epoch: int | None = None  # the newest checkpoint written or resumed from


def _reused(saved: Checkpoint, model: SpotExpressionModel, settings: LoopSettings) -> LoopResult:
    logger.info("%s: already trained (%d epochs); reusing the stored result", settings.label, saved.epoch)
    model.load_state_dict(saved.kept)
    return LoopResult(
        state_dict=saved.kept, history=saved.history, best_epoch=saved.best_epoch,
        stopped_early=saved.stopped_early, resumed_from=saved.epoch,
        peak_gpu_memory_mib=saved.peak_gpu_memory_mib, reused=True,
    )  # fmt: skip


def _resumed(saved: Checkpoint, optimiser, settings: LoopSettings, checkpoints: _Checkpoints) -> _LoopState:
    optimiser.load_state_dict(saved.optimiser)
    _restore_rng_state(saved.rng)
    logger.info("%s: resuming after epoch %d from %s", settings.label, saved.epoch, checkpoints.store)
    return _LoopState(
        history=saved.history, best={"loss": saved.best_loss, "epoch": saved.best_epoch, "state": saved.best_state},
        stale=saved.stale, start_epoch=saved.epoch + 1, resumed_from=saved.epoch + 1, checkpoint_epoch=saved.epoch,
    )  # fmt: skip


def _train_epoch(model, optimiser, train: Sequence[SectionExample], settings: LoopSettings, epoch: int) -> list[float]:
    model.train()
    losses = []
    for batch_index in _batches(len(train), settings.sections_per_step, settings.seed, epoch):
        batch = collate_sections([train[i] for i in batch_index]).to(settings.device)
        with autocast(settings.device, settings.precision):
            output = model(batch)
            terms = model.loss_terms(batch, output)
        optimiser.zero_grad(set_to_none=True)
        terms["loss"].backward()
        optimiser.step()
        losses.append(terms["loss"].item())
    if settings.device.type == "cuda":
        torch.cuda.synchronize(settings.device)
    return losses


def _validate(model, validation, settings: LoopSettings, state: _LoopState, record: dict[str, float]) -> None:
    record["validation_loss"] = evaluate_loss(model, validation, settings)
    if record["validation_loss"] < state.best["loss"] - settings.min_delta:
        state.best = {
            "loss": record["validation_loss"],
            "epoch": record["epoch"],
            "state": copy.deepcopy(model.state_dict()),
        }
        state.stale = 0
    else:
        state.stale += 1


def _log_progress(settings: LoopSettings, record: dict[str, float]) -> None:
    extra = f", validation {record['validation_loss']:.4f}" if "validation_loss" in record else ""
    logger.info(
        "%s: epoch %d/%d, train loss %.4f%s, %.1f s/epoch",
        settings.label, record["epoch"], settings.epochs, record["train_loss"], extra, record["seconds"],
    )  # fmt: skip


def _fit(model, train, validation, settings: LoopSettings, checkpoints: _Checkpoints) -> LoopResult:
    device = settings.device
    model.to(device)
    optimiser = make_optimiser(model, settings)
    if settings.data_on_device:  # uint8 patches and the graphs stay on the device; batches are built there
        train, validation = examples_on(train, device), examples_on(validation, device)
    state = _LoopState()
    saved = checkpoints.saved(settings.label)
    if saved is not None:
        model.load_state_dict(saved.model)
        if saved.complete:
            _release(optimiser)
            return _reused(saved, model, settings)
        state = _resumed(saved, optimiser, settings, checkpoints)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    logger.info("%s: training%s", settings.label, f" ({settings.description})" if settings.description else "")
    try:
        _epochs(model, optimiser, (train, validation), settings, checkpoints, state)
    except RunInterrupted as stop:
        done = state.history[-1]["epoch"] if state.history else state.start_epoch - 1
        raise stop.at(settings.label, done, state.checkpoint_epoch) from None
    return _finish(model, optimiser, bool(validation), settings, checkpoints, state)


def _epochs(model, optimiser, data: tuple[Sequence, Sequence], settings: LoopSettings, checkpoints: _Checkpoints,
            state: _LoopState) -> None:  # fmt: skip
    """Train ``data`` (training, validation examples) from ``state.start_epoch`` to the last epoch
    (or an early stop), checkpointing as set."""
    train, validation = data
    progress_every = settings.progress_every or max(1, settings.epochs // 5)
    n_spots = sum(e.n_spots for e in train)
    for epoch in range(state.start_epoch, settings.epochs + 1):
        started = time.perf_counter()
        losses = _train_epoch(model, optimiser, train, settings, epoch)
        seconds = time.perf_counter() - started
        record = {"epoch": epoch, "train_loss": float(np.mean(losses)), "seconds": seconds,
                  "spots_per_second": n_spots / seconds}  # fmt: skip
        if validation:
            _validate(model, validation, settings, state, record)
        state.history.append(record)
        for listener in (settings.on_epoch, EPOCH_LISTENER.get()):
            if listener is not None:
                listener(record)
        if epoch % progress_every == 0 or epoch == settings.epochs:
            _log_progress(settings, record)
        if validation and settings.patience is not None and state.stale >= settings.patience:
            logger.info(
                "%s: early stop at epoch %d (best validation epoch %d)", settings.label, epoch, state.best["epoch"]
            )
            state.stopped_early = True
            break
        if epoch % settings.checkpoint_every == 0 and epoch < settings.epochs:
            checkpoints.save(
                epoch, complete=False, model=model.state_dict(), optimiser=optimiser.state_dict(),
                rng=_cpu_rng_state(), history=state.history, best_loss=state.best["loss"],
                best_epoch=state.best["epoch"], best_state=state.best["state"], stale=state.stale,
            )  # fmt: skip
            state.checkpoint_epoch = epoch


def _finish(
    model, optimiser, validated: bool, settings: LoopSettings, checkpoints: _Checkpoints, state: _LoopState
) -> LoopResult:
    """Keep the best (early stopping) or last weights, write the completed checkpoint."""
    device = settings.device
    use_best = validated and settings.patience is not None and state.best["state"] is not None
    kept = state.best["state"] if use_best else model.state_dict()
    best_epoch = state.best["epoch"] if use_best else state.history[-1]["epoch"]
    peak = torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None
    kept = {k: v.detach().cpu() for k, v in kept.items()}
    checkpoints.save(
        state.history[-1]["epoch"], complete=True, model=kept, kept=kept, history=state.history,
        best_epoch=best_epoch, stopped_early=state.stopped_early, peak_gpu_memory_mib=peak,
    )  # fmt: skip
    model.load_state_dict(kept)
    _release(optimiser)
    return LoopResult(kept, state.history, best_epoch, state.stopped_early, state.resumed_from, peak)


def _release(optimiser: torch.optim.Optimizer | StepInBackward) -> None:
    if isinstance(optimiser, StepInBackward):
        optimiser.remove()


def predict(
    model: SpotExpressionModel,
    examples: Sequence[SectionExample],
    device: torch.device,
    precision: Precision,
    reuse_host_memory: bool | Literal["auto"] = "auto",
) -> list[np.ndarray]:
    """Eval-mode predictions ``(N, G)`` per section, one section at a time."""
    model.to(device).eval()
    out = []
    reuse = resolve_host_memory_reuse(reuse_host_memory, max((e.n_spots for e in examples), default=0))
    with torch.no_grad(), reuse_freed_host_memory(reuse):
        for example in examples:
            batch = collate_sections([example]).to(device)
            with autocast(device, precision):
                out.append(model(batch).prediction[0].float().cpu().numpy())
    return out
