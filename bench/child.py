"""Workloads measured in a fresh process each, so that peak memory (``VmHWM``) is theirs alone.

    python -m bench.child scaling --spots 1000 --variant ours
    python -m bench.child patching --data-dir DIR [--source her2st] --section B4 --variant ours|whole_float
    python -m bench.child patch_and_train --data-dir DIR [--source her2st] --section B4 [--steps 3]
    python -m bench.child end_to_end --project DIR

Each prints one JSON line (the last line of stdout).
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch.nn.attention import SDPBackend, sdpa_kernel

from bench.model_ops import paper_model, train_step
from thitogene_kedro.models import collate_sections
from thitogene_kedro.models.runtime import autocast, resolve_host_memory_reuse, reuse_freed_host_memory
from thitogene_kedro.models.summary import demo_section
from thitogene_kedro.profiling import ResourceMeter, current_rss_mib, peak_rss_mib
from thitogene_kedro.training.loop import LoopSettings, make_optimiser

CPU = torch.device("cpu")
VARIANTS = {
    # the project's formulation: neighbour-list graph attention, PyTorch's fused attention kernels
    "ours": ("neighbour_list", None),
    # the naive one: N×N graph attention and the plain softmax(QKᵀ)V attention
    "naive": ("dense", [SDPBackend.MATH]),
}


def end_to_end(project: Path) -> dict:
    """``kedro run`` (the default pipeline) in ``project``, inside this process."""
    from kedro.framework.cli import main as kedro_main  # noqa: PLC0415

    os.chdir(project)
    start = time.perf_counter()
    sys.argv = ["kedro", "run"]
    try:
        kedro_main()
        status = "ok"
    except SystemExit as exit_:
        status = "ok" if not exit_.code else f"exit {exit_.code}"
    except Exception as error:  # noqa: BLE001 - reported in the table
        status = f"failed: {type(error).__name__}: {str(error)[:100]}"
    return {"seconds": time.perf_counter() - start, "peak_rss_mib": peak_rss_mib(), "status": status}


def scaling(spots: int, variant: str, preset: str, steps: int, n_genes: int = 785) -> dict:
    """Training steps of the paper model on a synthetic ``spots``-spot section; forward time per component."""
    gat, backends = VARIANTS[variant]
    batch = demo_section(spots, n_genes)
    batch.targets = torch.rand(1, spots, n_genes)
    # a square grid of 5,000 spots is 71 wide: Visium-sized sections need a wider position table than 64
    model = paper_model(n_genes, preset, gat, position_table_size=max(64, int(batch.positions.max()) + 1))
    optimiser = make_optimiser(model, LoopSettings(epochs=steps, lr=1e-5))
    forward: dict[str, float] = {}
    starts: dict[str, float] = {}
    for name in ("caps_layer", "vit", "gat"):
        module = getattr(model, name)
        module.register_forward_pre_hook(lambda m, a, name=name: starts.__setitem__(name, time.perf_counter()))
        module.register_forward_hook(
            lambda m, a, o, name=name: forward.__setitem__(
                name, forward.get(name, 0.0) + time.perf_counter() - starts[name]
            )
        )
    context = sdpa_kernel(backends) if backends else contextlib.nullcontext()
    times = []
    with context, reuse_freed_host_memory(resolve_host_memory_reuse("auto", spots)):  # as the training loop runs
        for step in range(steps + 1):  # the first is a warm-up
            if step == 1:
                forward.clear()
            start = time.perf_counter()
            train_step(model, batch, optimiser)
            if step:
                times.append(time.perf_counter() - start)
    return {
        "spots": spots,
        "variant": variant,
        "step_s": float(np.median(times)),
        "forward_s": {name: seconds / steps for name, seconds in forward.items()},
        "peak_rss_mib": peak_rss_mib(),
    }


def patching(root: Path, source_name: str, section: str, variant: str) -> dict:
    """Cut the section's 112-px patches: the project's way, or the reference's whole-slide float decode."""
    from PIL import Image  # noqa: PLC0415

    from thitogene_kedro.processing.patches import PatchingParams, cut_patches  # noqa: PLC0415
    from thitogene_kedro.sections import SectionSource  # noqa: PLC0415
    from thitogene_kedro.sections.images import SlideImage  # noqa: PLC0415

    source = SectionSource(source_name, root)
    raw = source.read(section)
    xy = np.asarray(raw.obsm["spatial"])
    before = peak_rss_mib()
    start = time.perf_counter()
    if variant == "ours":
        with SlideImage(source.image_path(section), section) as image:
            patches, _ = cut_patches(image, xy, PatchingParams())
    else:  # the reference: the whole image as float (ToTensor), then crops
        Image.MAX_IMAGE_PIXELS = None
        with Image.open(source.image_path(section)) as image:
            pixels = torch.from_numpy(np.asarray(image.convert("RGB"))).permute(2, 0, 1).float().div(255)
        r = PatchingParams().patch_size // 2
        patches = torch.stack([pixels[:, int(y) - r : int(y) + r, int(x) - r : int(x) + r] for x, y in xy])
    seconds = time.perf_counter() - start
    return {
        "variant": variant, "spots": len(patches), "seconds": seconds, "peak_rss_mib": peak_rss_mib(),
        "before_mib": before,
    }  # fmt: skip


def _tensors_nbytes(tensors) -> int:
    return sum(t.numel() * t.element_size() for t in tensors if isinstance(t, torch.Tensor))


def saved_activations_mib(model: torch.nn.Module, batch, precision: str) -> float:
    """What one training forward keeps for its backward: the storages autograd saves, counted once
    each, leaving out the weights and the section's own tensors (counted as parts of their own)."""
    own = {
        t.untyped_storage().data_ptr()
        for t in (*model.parameters(), *vars(batch).values())
        if isinstance(t, torch.Tensor)
    }
    saved: dict[int, int] = {}

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        storage = tensor.untyped_storage()
        if storage.data_ptr() not in own:
            saved[storage.data_ptr()] = storage.nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor), autocast(CPU, precision):
        loss = model.loss_terms(batch, model.train()(batch))["loss"]
    del loss
    return sum(saved.values()) / 2**20


def patch_and_train(  # noqa: PLR0913, PLR0917 - the bench's command-line switches
    root: Path, source_name: str, section: str, steps: int, preset: str, in_backward: bool, precision: str = "fp32"
) -> dict:
    """Patch one real section and train the paper model on it: the whole job's peak memory, the
    training phase's own peak and its parts (imports, section, weights, gradients, Adam state,
    saved activations)."""
    from bench.gpu_check import load_sections  # noqa: PLC0415

    imports = current_rss_mib()
    start = time.perf_counter()
    examples, genes = load_sections(root, [section], None, source_name)
    batch = collate_sections(examples)
    patched = peak_rss_mib()
    model = paper_model(len(genes), preset)
    optimiser = make_optimiser(model, LoopSettings(epochs=steps, lr=1e-5, step_in_backward=in_backward))
    activations = saved_activations_mib(model, batch, precision)
    gc.collect()
    training = ResourceMeter()  # the training phase's own peak (the peak is reset at its start)
    with training, reuse_freed_host_memory(resolve_host_memory_reuse("auto", int(batch.mask.sum()))):
        for _ in range(steps):
            train_step(model, batch, optimiser, precision=precision)
    weights = _tensors_nbytes(model.parameters()) / 2**20
    optimisers = getattr(optimiser, "optimisers", [optimiser])  # one per parameter with the step in the backward
    state = [v for o in optimisers for per in o.state.values() for v in per.values()]
    parts = {
        "imports": imports, "section": _tensors_nbytes(vars(batch).values()) / 2**20, "weights": weights,
        "gradients": 0.0 if in_backward else weights, "optimiser": _tensors_nbytes(state) / 2**20,
        "activations": activations,
    }  # fmt: skip
    return {
        "spots": int(batch.mask.sum()),
        "genes": len(genes),
        "steps": steps,
        "precision": precision,
        "seconds": time.perf_counter() - start,
        "patched_peak_mib": patched,
        "peak_rss_mib": peak_rss_mib(),
        "training_peak_mib": training.peak_rss_mib,
        "parts_mib": parts,
        "parameters_mib": weights,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("workload", choices=["scaling", "patching", "patch_and_train", "end_to_end"])
    parser.add_argument("--project", type=Path)
    parser.add_argument("--spots", type=int, default=300)
    parser.add_argument("--variant", default="ours")
    parser.add_argument("--preset", default="paper_her2st")
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--data-dir", type=Path)
    parser.add_argument("--source", default="her2st")
    parser.add_argument("--section", default="B4")
    parser.add_argument("--step-in-backward", action="store_true")
    parser.add_argument("--precision", default="fp32", choices=["fp32", "bf16"])
    args = parser.parse_args(argv)
    if args.workload == "end_to_end":
        result = end_to_end(args.project)
    elif args.workload == "scaling":
        result = scaling(args.spots, args.variant, args.preset, args.steps)
    elif args.workload == "patching":
        result = patching(args.data_dir, args.source, args.section, args.variant)
    else:
        result = patch_and_train(
            args.data_dir, args.source, args.section, args.steps, args.preset, args.step_in_backward, args.precision
        )
    print(json.dumps(result))  # noqa: T201


if __name__ == "__main__":
    main()
