"""Models on frozen features against THItoGene from pixels, in one run.

- **Feature extraction**: UNI's architecture (ViT-L/16, 224 px; random weights saved to a local
  file and loaded through the project's loading path: speed does not depend on the values) encodes
  spots of the bench section through ``encoders.features.section_features`` (patches cut at the
  encoder's field of view from the slide, resized, normalised, encoded), in patches/s, against its
  floor (the encoder's FLOPs ÷ the fp32 matmul rate of the same run).
- **One training epoch of a fold** (every training section once, one section per step, as the
  training loop takes them): THItoGene from pixels against THItoGene's spatial head on cached
  features of UNI's width (1,024; the values are drawn, the time does not depend on them), in the
  ``paper_her2st`` and ``small`` presets, the head alone at ``light``, each head also as a speed-up
  over THItoGene ``paper_her2st`` from pixels, and the linear probe's closed-form fit (its whole
  training) on the same features.
"""

from __future__ import annotations

import statistics
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from bench.model_ops import count_flops, matmul_rate, timed, train_step
from thitogene_kedro.encoders import encoder_spec, load_encoder
from thitogene_kedro.encoders.features import FeatureParams, section_features
from thitogene_kedro.encoders.frozen import build_architecture
from thitogene_kedro.models import SectionExample, build_model, collate_sections
from thitogene_kedro.models.runtime import reuse_freed_host_memory
from thitogene_kedro.sections import SectionSource
from thitogene_kedro.sections.images import SlideImage
from thitogene_kedro.sections.spatial_layout import section_mpp
from thitogene_kedro.training.loop import LoopSettings, make_optimiser

ENCODER = "uni"
ENCODER_WIDTH = 1024  # UNI's embedding


@dataclass
class Timing:
    """One measured workload."""

    name: str
    times: list[float]
    flops: int = 0  # of one run, where PyTorch's counter sees them (not the probe's NumPy fit)
    preset: str | None = None  # the model preset timed, for the side-by-side ratio
    items: int = 0  # patches encoded in one run (feature extraction)

    @property
    def median(self) -> float:
        return statistics.median(self.times)


def extraction(  # noqa: PLR0913, PLR0917 - the slide, its spots and the bench's settings
    image_path: Path, pixel_xy: np.ndarray, mpp: float, spots: int, repeats: int, depth: int | None = None
) -> tuple[Timing, float]:
    """Seconds to encode ``spots`` spots with UNI's architecture from the slide (``depth``: fewer
    blocks than the card's 24, for a quick run), and the floor of the encoder's arithmetic (seconds)."""
    spec = encoder_spec(ENCODER)
    overrides = {} if depth is None else {"depth": depth}
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as folder:
        weights = Path(folder) / spec.weights_file
        torch.save(build_architecture(spec, overrides).state_dict(), weights)
        encoder = load_encoder(spec, weights, overrides)
    params = FeatureParams(batch_size=spots)
    xy = pixel_xy[:spots]
    with SlideImage(image_path) as image:
        section_features(encoder, image, xy, mpp, params)  # warm-up (and the slide decoded once)
        times = [timed(lambda: section_features(encoder, image, xy, mpp, params)) for _ in range(repeats)]
    pixels = torch.zeros((spots, spec.input_px, spec.input_px, 3), dtype=torch.uint8)
    floor = count_flops(lambda: encoder(pixels)) / matmul_rate()
    blocks = "" if depth is None else f" ({depth} of its 24 blocks)"
    return Timing(f"{spec.title}{blocks}, {spots} spots", times, items=spots), floor


def feature_examples(examples: list[SectionExample], width: int = ENCODER_WIDTH) -> list[SectionExample]:
    """The same sections (positions, graph, targets) given by drawn features of ``width`` instead of patches."""
    generator = np.random.default_rng(0)
    return [
        SectionExample(
            e.section_id,
            None,
            e.positions,
            e.edge_index,
            e.targets,
            e.counts,
            features=generator.standard_normal((e.n_spots, width)).astype(np.float32),
        )  # fmt: skip
        for e in examples
    ]


def epoch_times(model: torch.nn.Module, examples: list[SectionExample], repeats: int) -> tuple[list[float], int]:
    """Seconds of one training epoch (each section one step, fused Adam), ``repeats`` times after a
    warm-up, and its FLOPs."""
    batches = [collate_sections([e]) for e in examples]
    optimiser = make_optimiser(model, LoopSettings(epochs=1, lr=1e-5))

    def epoch() -> None:
        for batch in batches:
            train_step(model, batch, optimiser)

    with reuse_freed_host_memory():
        flops = count_flops(epoch)  # also the warm-up
        return [timed(epoch) for _ in range(repeats)], flops


def probe_fit_times(examples: list[SectionExample], n_genes: int, repeats: int) -> list[float]:
    """Seconds of the linear probe's closed-form fit (alpha chosen by leave-one-section-out) on ``examples``."""

    def fit() -> None:
        probe = build_model({"name": "linear_probe"}, n_genes, feature_dim=ENCODER_WIDTH)
        probe.fit_closed_form(examples)

    fit()
    return [timed(fit) for _ in range(repeats)]


def epoch_rows(
    train: list[SectionExample], n_genes: int, repeats: int, presets: tuple[str, ...] = ("paper_her2st", "small"),
    head_presets: tuple[str, ...] = ("light",),
) -> list[Timing]:  # fmt: skip
    """One epoch of THItoGene from pixels and of the spatial head on features, each preset; the
    head alone in ``head_presets`` (no THItoGene preset of that name); then the probe's fit. At a
    shared preset the head keeps THItoGene's ViT and GAT (its ablation switches apply), so of a
    THItoGene step it saves only the ODConv and capsule encoder."""
    features = feature_examples(train)
    rows = []
    for preset in presets:
        torch.manual_seed(0)
        pixels = build_model({"name": "thitogene", "preset": preset}, n_genes)
        rows.append(
            Timing(f"THItoGene `{preset}` from pixels, one epoch", *epoch_times(pixels, train, repeats), preset=preset)
        )
        del pixels
        rows.append(head_timing(preset, features, n_genes, repeats))
    rows += [head_timing(preset, features, n_genes, repeats) for preset in head_presets]
    rows.append(Timing("linear probe, its whole closed-form fit", probe_fit_times(features, n_genes, repeats)))
    return rows


def head_timing(preset: str, features: list[SectionExample], n_genes: int, repeats: int) -> Timing:
    """One epoch of the spatial head at ``preset`` on ``features``."""
    torch.manual_seed(0)
    head = build_model({"name": "thitogene_head", "preset": preset}, n_genes, feature_dim=ENCODER_WIDTH)
    times, flops = epoch_times(head, features, repeats)
    return Timing(f"spatial head `{preset}` on features, one epoch", times, flops, preset)


def features_section(  # noqa: PLR0913, PLR0917 - the data and the bench's settings
    source: SectionSource, section: str, train: list[SectionExample], n_genes: int, repeats: int,
    presets: tuple[str, ...] = ("paper_her2st", "small"), spots: int = 16, depth: int | None = None,
    head_presets: tuple[str, ...] = ("light",),
) -> list[str]:  # fmt: skip
    """The features block of the bench report (``train``: the fold's training sections)."""
    raw = source.read(section)
    extracted = extraction(source.image_path(section), np.asarray(raw.obsm["spatial"]), section_mpp(raw), spots,
                           max(2, repeats // 2), depth)  # fmt: skip
    epochs = epoch_rows(train, n_genes, repeats, presets, head_presets)
    return features_report(extracted, epochs, [e.section_id for e in train])


def features_report(extracted: tuple[Timing, float], epochs: list[Timing], train_sections: list[str]) -> list[str]:
    """Markdown: patches/s against the floor; the epochs side by side, as times, as ratios to the
    head's at the same preset, and each head's as a speed-up over the largest THItoGene from pixels."""
    timing, floor = extracted
    heads = {row.preset: row.median for row in epochs if row.name.startswith("spatial head")}
    pixels = next((row for row in epochs if row.name.startswith("THItoGene")), None)
    reference = f"THItoGene `{pixels.preset}` from pixels ÷ this" if pixels else "–"
    lines = [
        "| feature extraction | median s | min–max s | patches/s | floor s | median / floor |",
        "|---|---:|---:|---:|---:|---:|",
        f"| {timing.name} | {timing.median:.2f} | {min(timing.times):.2f}–{max(timing.times):.2f} | "
        f"{timing.items / timing.median:.1f} | {floor:.2f} | {timing.median / floor:.2f} |",
        "",
        f"Training sections {', '.join(train_sections)} (the fold that holds out the bench section):",
        "",
        f"| workload | GFLOP | median s | min–max s | ÷ the spatial head's epoch, same preset | {reference} |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for row in epochs:
        ratio = (
            f"{row.median / heads[row.preset]:.1f}" if row.preset in heads and row.name.startswith("THItoGene") else "–"
        )
        speedup = f"{pixels.median / row.median:.1f}" if pixels and row.name.startswith("spatial head") else "–"
        gflop = f"{row.flops / 1e9:.1f}" if row.flops else "–"
        lines.append(
            f"| {row.name} | {gflop} | {row.median:.3f} | {min(row.times):.3f}–{max(row.times):.3f} | {ratio} | {speedup} |"
        )
    return lines
