"""fp32 against bf16 autocast on one section: the training step and inference, interleaved in one run,
each against its own floor (the step's FLOPs ÷ the matmul rate measured in its dtype in the same run).

The bf16 floor assumes every FLOP runs at the bf16 matmul rate; the parts autocast keeps in float32
(softmax, norms, the loss, the sparse graph-attention products, the optimiser) make the true floor
higher, so ``median / floor`` of the bf16 rows overstates the distance to it.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass

import torch

from bench.model_ops import count_flops, matmul_rate, timed, train_step
from thitogene_kedro.models import SectionBatch
from thitogene_kedro.models.runtime import autocast, reuse_freed_host_memory
from thitogene_kedro.training.loop import LoopSettings, make_optimiser

PRECISIONS = ("fp32", "bf16")


@dataclass
class PrecisionRow:
    """One workload in one precision."""

    workload: str
    precision: str
    times: list[float]
    floor: float

    @property
    def median(self) -> float:
        return statistics.median(self.times)


def precision_rows(model: torch.nn.Module, batch: SectionBatch, repeats: int) -> list[PrecisionRow]:
    """Training step and inference of ``model`` on ``batch`` in fp32 and bf16, alternating run by run."""
    device = torch.device("cpu")
    optimiser = make_optimiser(model, LoopSettings(epochs=1, lr=1e-5))

    def step(precision: str) -> None:
        train_step(model, batch, optimiser, precision=precision)

    def inference(precision: str) -> None:
        with torch.no_grad(), autocast(device, precision):
            model.eval()(batch)

    flops = {"training step": count_flops(lambda: step("fp32")), "inference": count_flops(lambda: inference("fp32"))}
    rates = {"fp32": matmul_rate(), "bf16": matmul_rate(dtype=torch.bfloat16)}
    workloads = {"training step": step, "inference": inference}
    times: dict[tuple[str, str], list[float]] = {(w, p): [] for w in workloads for p in PRECISIONS}
    with reuse_freed_host_memory():
        for run in workloads.values():
            for precision in PRECISIONS:
                run(precision)  # warm-up
        for _ in range(repeats):
            for (workload, precision), recorded in times.items():
                recorded.append(timed(lambda w=workload, p=precision: workloads[w](p)))
    return [PrecisionRow(w, p, t, flops[w] / rates[p]) for (w, p), t in times.items()]


def precision_table(rows: list[PrecisionRow], bf16_floor: bool = True) -> list[str]:
    """Markdown: per workload and precision the median, the floor, and bf16's time as a share of fp32's
    (``bf16_floor`` False: no bf16 floor, where bf16 is emulated and its matmul rate is not the rate
    of the kernels autocast runs)."""
    fp32 = {row.workload: row.median for row in rows if row.precision == "fp32"}
    lines = [
        "| workload | precision | median s | min–max s | floor s | median / floor | ÷ fp32 median |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        cells = [row.workload, row.precision, f"{row.median:.3f}", f"{min(row.times):.3f}–{max(row.times):.3f}"]
        floor = bf16_floor or row.precision == "fp32"
        cells += [f"{row.floor:.3f}" if floor else "–", f"{row.median / row.floor:.2f}" if floor else "–"]
        cells.append(f"{row.median / fp32[row.workload]:.2f}")
        lines.append("| " + " | ".join(cells) + " |")
    return lines
