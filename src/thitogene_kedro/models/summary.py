"""Parameter counts per component and forward FLOPs, for the model cards in ``docs/models/``.

``python -m thitogene_kedro.models.summary [--spots 300] [--models thitogene histogene hist2st]``
prints one markdown table per model: parameters and forward GFLOPs (eval mode, one section of
``--spots`` random 112-px patches on a square grid) per top-level component, measured with
``torch.utils.flop_counter.FlopCounterMode`` (matmul/conv counted as 2·MAC; element-wise ops and
biases are not counted). While counting, oneDNN is switched off and attention runs through the
math backend, because FlopCounterMode sees neither the fused oneDNN LSTM nor the fused CPU
attention kernel.
"""

from __future__ import annotations

import argparse
import math
import platform
import time
import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from thitogene_kedro.models.base import SpotExpressionModel
from thitogene_kedro.models.batch import SectionBatch, SectionExample, collate_sections
from thitogene_kedro.models.registry import build_model
from thitogene_kedro.processing.spot_graphs import knn_edge_index


def parameter_counts(model: torch.nn.Module) -> dict[str, int]:
    """Parameters per top-level child module, in definition order."""
    return {name: sum(p.numel() for p in child.parameters()) for name, child in model.named_children()}


def demo_section(n_spots: int, n_genes: int, seed: int = 0) -> SectionBatch:
    """A one-section batch: ``n_spots`` random patches on a square grid, each listing its 4 nearest spots."""
    rng = np.random.default_rng(seed)
    side = math.ceil(math.sqrt(n_spots))
    positions = np.stack(np.meshgrid(np.arange(side), np.arange(side)), -1).reshape(-1, 2)[:n_spots]
    example = SectionExample(
        section_id="demo",
        patches=rng.integers(0, 256, (n_spots, 112, 112, 3), dtype=np.uint8),
        positions=positions.astype(np.int64),
        edge_index=knn_edge_index(positions, 4),
    )
    return collate_sections([example])


def forward_flops(model: SpotExpressionModel, batch: SectionBatch) -> tuple[int, dict[str, int], float]:
    """Total forward FLOPs, FLOPs per top-level component, and the forward's wall seconds (eval mode)."""
    model.eval()
    counter = FlopCounterMode(display=False, depth=None)
    math_attention = sdpa_kernel(SDPBackend.MATH)
    with torch.no_grad(), torch.backends.mkldnn.flags(enabled=False), math_attention, counter:
        start = time.perf_counter()
        model(batch)
        seconds = time.perf_counter() - start
    per_module = {key: sum(v.values()) for key, v in counter.get_flop_counts().items()}
    root = type(model).__name__
    components = {}
    for child, _ in model.named_children():
        key = f"{root}.{child}"
        if key in per_module:
            components[child] = per_module[key]
        else:  # containers that are iterated, not called (ModuleList): sum their direct children
            components[child] = sum(v for k, v in per_module.items() if k.startswith(key + ".") and k.count(".") == 2)
    return counter.get_total_flops(), components, seconds


def summarise(spec: Mapping[str, Any], n_genes: int, n_spots: int) -> str:
    """A markdown table of one model: parameters and forward GFLOPs per component."""
    torch.manual_seed(0)
    model = build_model(spec, n_genes)
    params = parameter_counts(model)
    total_flops, flops, seconds = forward_flops(model, demo_section(n_spots, n_genes))
    lines = [
        f"### {spec['name']} `{spec.get('preset', 'paper_her2st')}`, {n_genes} genes",
        "",
        f"| component | parameters | forward GFLOPs ({n_spots} spots) |",
        "|---|---:|---:|",
    ]
    for name, count in params.items():
        lines.append(f"| {name} | {count:,} | {flops.get(name, 0) / 1e9:.2f} |")
    lines.append(f"| **total** | **{sum(params.values()):,}** | **{total_flops / 1e9:.2f}** |")
    lines.append("")
    lines.append(f"CPU eval forward (FLOP counter on, oneDNN off): {seconds:.2f} s")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spots", type=int, default=300)
    parser.add_argument("--models", nargs="+", default=["thitogene", "histogene", "hist2st"])
    args = parser.parse_args(argv)
    print(f"torch {torch.__version__}, {platform.machine()}, {torch.get_num_threads()} threads")  # noqa: T201
    warnings.filterwarnings("ignore", message="TF32 acceleration on top of oneDNN")
    configurations = {
        "thitogene": [("paper_her2st", 785), ("paper_cscc", 171)],
        "histogene": [("paper_her2st", 785)],
        "hist2st": [("paper_her2st", 785)],
    }
    for name in args.models:
        for preset, n_genes in configurations[name]:
            print(summarise({"name": name, "preset": preset}, n_genes, args.spots), end="\n\n")  # noqa: T201


if __name__ == "__main__":
    main()
