"""Benchmark table: the machine's matmul rate, and THItoGene's training step and inference against it.

    python bench/run.py [--her2st-dir ../shared/data/her2st] [--section B4] [--repeats 5]

On a real her2st section when ``--her2st-dir`` (or ``HER2ST_DIR``) is given, else on a synthetic
section of 283 spots. For each operation: FLOPs (PyTorch's flop counter; matmul/conv as 2·MAC),
the median and spread of ``--repeats`` timed runs after one warm-up, and the ratio of the median
to the arithmetic floor (FLOPs ÷ the machine's measured fp32 matmul rate, 2048² × 2048). The
depthwise primary-capsule convolution's backward is overcounted by the flop counter (it ignores
``groups``); the table subtracts that overcount.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from pathlib import Path

import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from bench.gpu_check import load_sections
from thitogene_kedro.models import build_model, collate_sections
from thitogene_kedro.models.summary import demo_section


def matmul_rate(size: int = 2048, repeats: int = 10) -> float:
    """Measured fp32 matmul FLOP/s (best of ``repeats``)."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    a @ b
    best = min(_timed(lambda: a @ b) for _ in range(repeats))
    return 2 * size**3 / best


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def _flops(fn) -> int:
    counter = FlopCounterMode(display=False)
    with torch.backends.mkldnn.flags(enabled=False), sdpa_kernel(SDPBackend.MATH), counter:
        fn()
    return counter.get_total_flops()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--her2st-dir", type=Path, default=os.environ.get("HER2ST_DIR"))
    parser.add_argument("--gene-list", type=Path, default=os.environ.get("HER2ST_GENE_LIST"))
    parser.add_argument("--section", default="B4")
    parser.add_argument("--preset", default="paper_her2st")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)

    torch.manual_seed(0)
    if args.her2st_dir and Path(args.her2st_dir).is_dir():
        genes = args.gene_list.read_text().split() if args.gene_list else None
        examples, genes = load_sections(Path(args.her2st_dir), [args.section], genes)
        batch, label = collate_sections(examples), f"her2st {args.section}"
    else:
        genes = [f"G{i}" for i in range(785)]
        batch = demo_section(283, 785)
        batch.targets = torch.rand(1, 283, 785)
        label = "synthetic 283-spot section"
    n_spots, n_genes = int(batch.mask.sum()), len(genes)
    model = build_model({"name": "thitogene", "preset": args.preset}, n_genes)
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-5)

    def step() -> None:
        model.train()
        terms = model.loss_terms(batch, model(batch))
        optimiser.zero_grad(set_to_none=True)
        terms["loss"].backward()
        optimiser.step()

    def forward() -> None:
        model.eval()
        with torch.no_grad():
            model(batch)

    rate = matmul_rate()
    depthwise = model.caps_layer.primary_caps.depthwise_conv
    overcount = 2 * n_spots * depthwise.in_channels * depthwise.kernel_size[0] ** 2 * (depthwise.groups - 1)
    rows = []
    for name, fn, flops in (
        ("training step (fwd+bwd+Adam)", step, _flops(step) - overcount),
        ("inference (eval forward)", forward, _flops(forward)),
    ):
        fn()  # warm-up
        times = [_timed(fn) for _ in range(args.repeats)]
        median = statistics.median(times)
        rows.append((name, flops, median, min(times), max(times), median / (flops / rate)))
    machine = f"torch {torch.__version__}, {platform.machine()}, {torch.get_num_threads()} threads"
    print(f"{machine}; {label}: {n_spots} spots, {n_genes} genes, {args.preset}")  # noqa: T201
    print(f"fp32 matmul 2048²×2048: {rate / 1e9:.0f} GFLOP/s")  # noqa: T201
    print("| operation | GFLOP | median s | min–max s | floor s | median / floor |")  # noqa: T201
    print("|---|---:|---:|---:|---:|---:|")  # noqa: T201
    for name, flops, median, low, high, ratio in rows:
        cells = f"{flops / 1e9:.1f} | {median:.3f} | {low:.3f}–{high:.3f} | {flops / rate:.3f} | {ratio:.2f}"
        print(f"| {name} | {cells} |")  # noqa: T201


if __name__ == "__main__":
    main()
