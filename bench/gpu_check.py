"""GPU check: train one fold of a paper configuration on real HER2+ sections for a few epochs.

    python bench/gpu_check.py --her2st-dir ../shared/data/her2st --gene-list ../shared/data/gene-lists/her2st_785_genes.txt

Trains on all given sections but the test one (default: train C2–C5, test B4) with the
``paper_her2st`` THItoGene, once per precision (fp32, then bf16 autocast), and prints per
precision: seconds per epoch (after a warm-up epoch), training throughput in spots/s, peak GPU
memory, eval forward time on the test section and its held-out PCC (meaningless after a few
epochs; printed to show the path works), and the projected time of the paper's protocol (32
folds × 300 epochs × 31 training sections of the loaded sections' mean size) at that throughput,
one fold at a time. On CUDA the training sections stay on the GPU as uint8 (``data_on_device``);
``--sections-per-step`` batches sections. Ratios are measured in the same run. ``--write
docs/benchmarks.md`` also puts the report, with the device, the date and the command, between the
``gpu:begin``/``gpu:end`` markers of that file. ``--device cpu --preset small --epochs 1`` runs it
anywhere (the tests do).
"""

from __future__ import annotations

import argparse
import datetime
import sys
import time
from pathlib import Path

import numpy as np
import torch

from bench.report import cpu_name, write_block
from thitogene_kedro.metrics import pearson_per_gene
from thitogene_kedro.models import SectionExample, build_model, resolve_device
from thitogene_kedro.processing.inputs import SectionArrays, section_example
from thitogene_kedro.processing.normalisation import NormalisationParams, normalise_section
from thitogene_kedro.processing.patches import PatchingParams, cut_patches
from thitogene_kedro.processing.spot_graphs import GraphBuildingParams, build_section_graph
from thitogene_kedro.sections import SectionSource
from thitogene_kedro.sections.images import SlideImage
from thitogene_kedro.training.loop import LoopSettings, fit, predict, seed_everything


def load_sections(
    root: Path, sections: list[str], genes: list[str] | None, source_name: str = "her2st"
) -> tuple[list[SectionExample], list[str]]:
    """Read, normalise, patch and graph ``sections`` of a data source, as the data pipelines do."""
    source = SectionSource(source_name, root)
    raws = {s: source.read(s) for s in sections}
    if genes is None:  # the 500 genes expressed in most spots across the given sections (no file given)
        common = sorted(set.intersection(*(set(r.var_names) for r in raws.values())))
        expressed = sum(np.asarray((r[:, common].X > 0).sum(axis=0)).ravel() for r in raws.values())
        genes = [common[i] for i in np.argsort(-expressed, kind="stable")[:500]]
    examples = []
    for section, raw in raws.items():  # the data pipelines' steps, through the same library functions
        normalised = normalise_section(raw, genes, NormalisationParams())
        with SlideImage(source.image_path(section), section) as image:
            patches, _ = cut_patches(image, normalised.obsm["spatial"], PatchingParams())
        arrays = SectionArrays(
            {"patches": patches, "spot_ids": np.asarray(normalised.obs_names)},
            build_section_graph(normalised, GraphBuildingParams()),
        )
        examples.append(section_example(section, raw, arrays, genes, NormalisationParams()).example)
    return examples, genes


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--her2st-dir", type=Path, required=True)
    parser.add_argument("--gene-list", type=Path, default=None)
    parser.add_argument("--sections", nargs="+", default=["B4", "C2", "C3", "C4", "C5"])
    parser.add_argument("--test", default="B4")
    parser.add_argument("--model", default="thitogene")
    parser.add_argument("--preset", default="paper_her2st")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--lr", type=float, default=1e-5)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--precisions", nargs="+", default=["fp32", "bf16"])
    parser.add_argument("--sections-per-step", type=int, default=1)
    parser.add_argument("--protocol", type=int, nargs=3, default=[32, 300, 31], metavar=("FOLDS", "EPOCHS", "SECTIONS"))
    parser.add_argument("--write", type=Path, help="markdown file whose gpu:begin/end block is replaced")
    args = parser.parse_args(argv)
    report: list[str] = []

    def emit(line: str) -> None:
        print(line)  # noqa: T201
        report.append(line)

    device = resolve_device(args.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_name()
    emit(f"**{datetime.date.today():%Y-%m-%d}**, torch {torch.__version__}, device {device} ({name}), "
         f"{args.model} {args.preset}; `python bench/gpu_check.py {' '.join(argv or sys.argv[1:])}`")  # fmt: skip
    emit("")
    genes = args.gene_list.read_text().split() if args.gene_list else None
    started = time.perf_counter()
    examples, genes = load_sections(args.her2st_dir, args.sections, genes)
    train = [e for e in examples if e.section_id != args.test]
    test = [e for e in examples if e.section_id == args.test]
    spots = sum(len(e.patches) for e in train)
    loaded = time.perf_counter() - started
    summary = f"{len(train)} training sections ({spots} spots), test {args.test}, {len(genes)} genes"
    emit(f"data: {summary}, loaded in {loaded:.1f} s")
    folds, epochs, sections = args.protocol
    protocol_spots = folds * epochs * sections * spots / len(train)
    emit(f"protocol: {folds} folds × {epochs} epochs × {sections} sections ≈ {protocol_spots:,.0f} spot-steps")
    header = "| precision | s/epoch | spots/s | peak GPU MiB | eval forward s | held-out PCC | protocol h (1 fold at a time) |"
    emit("")
    emit(header)
    emit("|---|---:|---:|---:|---:|---:|---:|")
    for precision in args.precisions:
        seed_everything(0)
        model = build_model({"name": args.model, "preset": args.preset}, len(genes))
        settings = LoopSettings(
            epochs=args.epochs, lr=args.lr, device=device, precision=precision, progress_every=10**6, label=precision,
            sections_per_step=args.sections_per_step, data_on_device=device.type == "cuda",
        )  # fmt: skip
        result = fit(model, train, [], settings)
        timed = result.history[1:] or result.history  # the first epoch includes warm-up
        seconds = float(np.mean([r["seconds"] for r in timed]))
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        prediction = predict(model, test, device, precision)[0]
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        forward = time.perf_counter() - start
        pcc = float(np.nanmean(pearson_per_gene(prediction, test[0].targets))) if test else float("nan")
        peak = f"{result.peak_gpu_memory_mib:,.0f}" if result.peak_gpu_memory_mib is not None else "-"
        hours = protocol_spots / (spots / seconds) / 3600
        cells = f"{seconds:.2f} | {spots / seconds:,.0f} | {peak} | {forward:.3f} | {pcc:.3f} | {hours:,.2f}"
        emit(f"| {precision} | {cells} |")
        del model
        if device.type == "cuda":
            torch.cuda.empty_cache()
    if args.write:
        write_block(args.write, "\n".join(report), "gpu")


if __name__ == "__main__":
    main()
