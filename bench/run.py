"""Benchmark suite: THItoGene against the machine's arithmetic floor, naive formulations side by side,
patching and whole-job memory, scaling with section size, and the end-to-end demo run.

    python bench/run.py [--her2st-dir ../shared/data/her2st] [--gene-list FILE] [--write docs/benchmarks.md]

On a real her2st section (``--section``, default B4) when ``--her2st-dir`` (or ``HER2ST_DIR``) is a
her2st copy, else on the synthetic demo. Prints one markdown report; ``--write`` also puts it into
that file between the ``bench:begin``/``bench:end`` markers. Workloads whose peak memory is reported
run in fresh processes (``bench/child.py``). ``--only features --block bench-features`` runs the
frozen-features section alone into its own block (``make bench-features``). Ratios, not absolute times, are what compare across
runs: these machines are noisy, so every comparison is measured in the same run.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from bench.features import features_section
from bench.gpu_check import load_sections
from bench.model_ops import (
    Row,
    allocator_pair,
    comparison_rows,
    matmul_rate,
    module_rows,
    paper_model,
    whole_step_rows,
)
from bench.precision import precision_rows, precision_table
from bench.report import cpu_name, write_block
from thitogene_kedro.models import collate_sections
from thitogene_kedro.models.runtime import native_bf16
from thitogene_kedro.sections import SectionSource, synthetic

ROOT = Path(__file__).resolve().parents[1]


def run_child(*args: str, env: dict[str, str] | None = None) -> dict:
    """``python -m bench.child ARGS`` in a fresh process; its JSON result or ``{"error": ...}``."""
    env = {**os.environ, **(env or {}), "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    out = subprocess.run(
        [sys.executable, "-m", "bench.child", *args], capture_output=True, text=True, check=False, env=env, cwd=ROOT
    )
    if out.returncode != 0:
        return {"error": (out.stderr.strip().splitlines() or [f"exit {out.returncode}"])[-1][:200]}
    return json.loads(out.stdout.strip().splitlines()[-1])


def floor_table(rows: list[Row], rate: float) -> list[str]:
    lines = [
        "| operation | GFLOP | median s | min–max s | floor s | median / floor |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        ratio = f"{row.median / row.floor(rate):.2f}" if row.flops else "–"
        floor = f"{row.floor(rate):.3f}" if row.flops else "–"
        cells = (
            f"{row.flops / 1e9:.1f} | {row.median:.3f} | {min(row.times):.3f}–{max(row.times):.3f} | {floor} | {ratio}"
        )
        lines.append(f"| {row.name} | {cells} |")
    return lines


def comparison_table(pairs: list[tuple[Row, Row]]) -> list[str]:
    lines = ["| naive | ours | naive s | ours s | naive / ours |", "|---|---|---:|---:|---:|"]
    for naive, ours in pairs:
        lines.append(
            f"| {naive.name} | {ours.name.split(', ', 1)[-1]} | {naive.median:.3f} | {ours.median:.3f} | "
            f"{naive.median / ours.median:.2f} |"
        )
    return lines


def scaling_table(sizes: list[int], naive_max: int, preset: str) -> list[str]:
    lines = [
        "| spots | step s (ours) | peak MiB (ours) | step s (naive) | peak MiB (naive) | naive / ours time | "
        "forward s: capsules · ViT · GAT (ours) |",
        "|---:|---:|---:|---:|---:|---:|---|",
    ]
    for spots in sizes:
        steps = "2" if spots <= 1000 else "1"
        ours = run_child("scaling", "--spots", str(spots), "--variant", "ours", "--preset", preset, "--steps", steps)
        naive = (
            run_child("scaling", "--spots", str(spots), "--variant", "naive", "--preset", preset, "--steps", steps)
            if spots <= naive_max
            else {"error": f"not run above {naive_max:,} spots (N×N tensors)"}
        )
        cells = [f"{spots:,}"]
        for result in (ours, naive):
            cells += (
                [f"{result['step_s']:.2f}", f"{result['peak_rss_mib']:,.0f}"]
                if "error" not in result
                else [result["error"], "–"]
            )
        ratio = f"{naive['step_s'] / ours['step_s']:.2f}" if "error" not in ours and "error" not in naive else "–"
        forward = " · ".join(f"{s:.2f}" for s in ours.get("forward_s", {}).values()) or "–"
        lines.append(f"| {' | '.join(cells)} | {ratio} | {forward} |")
    return lines


PARTS = ("imports", "section", "weights", "gradients", "optimiser", "activations")


def memory_table(data_dir: Path, source: str, section: str, preset: str) -> list[str]:
    """Peak RSS of patching and of patch + training (fresh process each); the training phase's own
    peak next to the sum of its parts, in fp32 and bf16 autocast."""
    base = ("--data-dir", str(data_dir), "--source", source, "--section", section)
    train = ("patch_and_train", *base, "--steps", "2", "--preset", preset)
    trained = {precision: run_child(*train, "--precision", precision) for precision in ("fp32", "bf16")}
    rows = [
        ("patching, the project's reader (uint8 crops)", run_child("patching", *base, "--variant", "ours")),
        (
            "patching, whole slide decoded to float (reference)",
            run_child("patching", *base, "--variant", "whole_float"),
        ),
        (f"patch + 2 training steps, THItoGene {preset}", trained["fp32"]),
        ("the same, bf16 autocast", trained["bf16"]),
        ("the same (fp32), optimiser step in the backward pass", run_child(*train, "--step-in-backward")),
    ]
    lines = ["| workload | s | peak RSS MiB |", "|---|---:|---:|"]
    for name, result in rows:
        if "error" in result:
            lines.append(f"| {name} | {result['error']} | – |")
        else:
            lines.append(f"| {name} | {result['seconds']:.2f} | {result['peak_rss_mib']:,.0f} |")
    lines += ["", *memory_parts_table(trained)]
    return lines


def memory_parts_table(trained: dict[str, dict]) -> list[str]:
    """The training phase's peak next to the sum of its parts (MiB), one row per precision."""
    lines = [
        "The training phase (2 steps after patching, its own peak: `VmHWM` reset when it starts) against "
        "what it must hold: the RSS after the imports, the section's tensors, weights, gradients, Adam's "
        "state and the activations one forward saves for the backward (autograd's saved storages, each "
        "counted once; under bf16 autocast they include the weights' bf16 copies).",
        "",
        "| precision | " + " | ".join(PARTS) + " | sum of parts | training peak RSS | peak − sum |",
        "|---|" + "---:|" * (len(PARTS) + 3),
    ]
    for precision, result in trained.items():
        if "error" in result or result.get("training_peak_mib") is None:
            lines.append(f"| {precision} | {result.get('error', 'no /proc peak')} |" + " – |" * (len(PARTS) + 2))
            continue
        parts = result["parts_mib"]
        total = sum(parts.values())
        cells = [f"{parts[name]:,.0f}" for name in PARTS]
        cells += [f"{total:,.0f}", f"{result['training_peak_mib']:,.0f}", f"{result['training_peak_mib'] - total:,.0f}"]
        lines.append(f"| {precision} | " + " | ".join(cells) + " |")
    return lines


def precision_section(model: torch.nn.Module, batch, repeats: int) -> list[str]:
    """The fp32/bf16 table; on a CPU without native bf16 one run each, to show what emulation costs."""
    if native_bf16(torch.device("cpu")):
        return precision_table(precision_rows(model, batch, repeats))
    return [
        f"This CPU ({torch.backends.cpu.get_cpu_capability()}) has no native bf16 in oneDNN (AVX512-BF16 or AMX): "
        "bf16 autocast is emulated, so one run of each (after a warm-up) shows what that costs (no bf16 floor: "
        "the emulated matmul is not the kernel autocast runs); `precision: auto` is fp32 here.",
        "",
        *precision_table(precision_rows(model, batch, 1), bf16_floor=False),
    ]


SECTIONS = ["floor", "modules", "comparisons", "precision", "memory", "features", "e2e"]


def features_rows(data_dir: Path, source: str, section: str, genes: list[str], args: argparse.Namespace) -> list[str]:
    """Feature extraction and one fold's training epoch on features against pixels (``bench.features``)."""
    sections = SectionSource(source, data_dir)
    others = args.fold_sections if source == "her2st" else [s for s in sections.section_ids() if s != section][:4]
    available = [s for s in others if sections.image_path(s) is not None]
    train, _ = load_sections(data_dir, available, genes, source)
    presets = ("paper_her2st", "small") if args.preset == "paper_her2st" else (args.preset,)
    return features_section(sections, section, train, len(genes), args.repeats, presets, depth=args.encoder_depth)


def end_to_end() -> list[str]:
    """``kedro run`` of the default pipeline on the synthetic demo, in a fresh copy of the project."""
    with tempfile.TemporaryDirectory() as folder:
        project = Path(folder)
        shutil.copytree(ROOT / "conf", project / "conf", ignore=shutil.ignore_patterns("local"))
        (project / "conf" / "local").mkdir()
        shutil.copy(ROOT / "pyproject.toml", project)
        (project / "src").mkdir()
        store = {"MLFLOW_TRACKING_URI": f"sqlite:///{project / 'mlflow.db'}", "KEDRO_DISABLE_TELEMETRY": "true"}
        result = run_child("end_to_end", "--project", str(project), env=store)
    if "error" in result:
        return [f"`kedro run` failed: {result['error']}"]
    return [
        "| command | s | peak RSS MiB | status |",
        "|---|---:|---:|---|",
        f"| `kedro run` | {result['seconds']:.0f} | {result['peak_rss_mib']:,.0f} | {result['status']} |",
    ]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--her2st-dir", type=Path, default=os.environ.get("HER2ST_DIR"))
    parser.add_argument("--gene-list", type=Path, default=os.environ.get("HER2ST_GENE_LIST") or None)
    parser.add_argument("--section", default="B4")
    parser.add_argument(
        "--synthetic-dir", type=Path, help="the synthetic demo's folder, if drawn already (else drawn here)"
    )
    parser.add_argument("--preset", default="paper_her2st")
    parser.add_argument(
        "--fold-sections", nargs="*", default=["C2", "C3", "C4", "C5"],
        help="training sections of the fold the features rows time (her2st; the synthetic demo: its others)",
    )  # fmt: skip
    parser.add_argument(
        "--encoder-depth", type=int, help="blocks of the UNI-architecture encoder timed (default: the card's 24)"
    )
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--sizes", type=int, nargs="*", default=[300, 1000, 3000, 5000])
    parser.add_argument("--naive-max", type=int, default=3000, help="largest section size run the naive way")
    parser.add_argument("--skip", nargs="*", default=[], choices=SECTIONS)
    parser.add_argument("--only", choices=SECTIONS, help="run this section alone (no scaling rows)")
    parser.add_argument("--write", type=Path, help="markdown file whose <block>:begin/end block is replaced")
    parser.add_argument("--block", default="bench", help="the name of the block --write replaces")
    args = parser.parse_args(argv)
    if args.only:
        args.skip, args.sizes = [name for name in SECTIONS if name != args.only], []
    started = time.perf_counter()
    torch.manual_seed(0)

    with tempfile.TemporaryDirectory() as scratch:
        if args.her2st_dir and Path(args.her2st_dir).is_dir():
            source, data_dir, section = "her2st", Path(args.her2st_dir), args.section
            genes = args.gene_list.read_text().split() if args.gene_list else None
        else:
            config = synthetic.SyntheticConfig()
            root = args.synthetic_dir or Path(scratch) / "synthetic"  # generate() keeps a matching data set
            source, data_dir = "synthetic", synthetic.generate(root, config)
            section, genes = synthetic.section_ids(data_dir, config)[0], None
        examples, genes = load_sections(data_dir, [section], genes, source)
        batch = collate_sections(examples)
        n_spots = int(batch.mask.sum())
        rate = matmul_rate()
        model = paper_model(len(genes), args.preset)

        report = [
            f"**{datetime.date.today():%Y-%m-%d}**, {cpu_name()}, {torch.get_num_threads()} threads, "
            f"torch {torch.__version__}, Python {platform.python_version()}.",
            "",
            f"Section: {source} {section}, {n_spots} spots, {len(genes)} genes; THItoGene `{args.preset}`. "
            f"fp32 matmul (2048² × 2048): **{rate / 1e9:.0f} GFLOP/s**.",
        ]
        if torch.cuda.is_available():
            bf16 = matmul_rate(8192, 5, torch.bfloat16, "cuda")
            fp32 = matmul_rate(8192, 5, torch.float32, "cuda")
            report.append(
                f"GPU {torch.cuda.get_device_name()}: fp32 {fp32 / 1e12:.0f}, bf16 {bf16 / 1e12:.0f} TFLOP/s."
            )
        allocator = allocator_pair(model, batch, args.repeats) if "comparisons" not in args.skip else None
        if "floor" not in args.skip:
            rows = whole_step_rows(model, batch, args.repeats)
            rows += module_rows(model, batch, args.repeats) if "modules" not in args.skip else []
            report += ["", "### One section against the arithmetic floor", "", *floor_table(rows, rate)]
        if "comparisons" not in args.skip:
            report += ["", "### Naive formulations side by side (same inputs, same run)", ""]
            report += comparison_table([allocator, *comparison_rows(model, batch, args.repeats)])
        if "precision" not in args.skip:
            report += ["", "### fp32 and bf16 autocast side by side (same section, alternating, same run)", ""]
            report += precision_section(model, batch, args.repeats)
        del model
        if "features" not in args.skip:
            report += ["", "### Models on frozen features against THItoGene from pixels (same run)", ""]
            report += features_rows(data_dir, source, section, genes, args)
        if "memory" not in args.skip:
            report += ["", "### Patching and the whole job's memory (fresh process each)", ""]
            report += memory_table(data_dir, source, section, args.preset)
        if args.sizes:
            report += [
                "",
                "### Scaling with section size (synthetic sections, one training step, fresh process each)",
                "",
            ]
            report += [
                "ours: neighbour-list graph attention and fused attention kernels; naive: N×N graph attention "
                "and softmax(QKᵀ)V written out.",
                "",
                *scaling_table(args.sizes, args.naive_max, args.preset),
            ]
        if "e2e" not in args.skip:
            report += ["", "### End to end: the default `kedro run` on the synthetic demo", "", *end_to_end()]
    report += ["", f"Suite time: {time.perf_counter() - started:.0f} s."]
    text = "\n".join(report)
    print(text)  # noqa: T201
    if args.write:
        write_block(args.write, text, args.block)


if __name__ == "__main__":
    main()
