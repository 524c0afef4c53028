"""SYNTHETIC demo data: procedurally drawn H&E-like sections with counts that depend on the image.

Nothing here is real tissue. The generator writes a deterministic (seeded) data set in the her2st
file layout, so the demo goes through the same reader as real data, and marks it as synthetic in
its file names (``SYN_*``), in ``SYNTHETIC_DATA.json`` and in each section's ``uns['source']``.

Each section is a disc-shaped tissue on a white background, split into domains (Voronoi cells over
random seeds) that differ in colour, nuclear density and nucleus size, with smoothed noise as
texture. The counts of each gene are drawn from a negative binomial whose mean depends on the
spot's domain and on the nuclear density and stain intensity measured in the spot's own patch, so
a model that sees the patch can learn the expression.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
from PIL import Image
from pydantic import BaseModel, ConfigDict, Field
from scipy import ndimage

from thitogene_kedro.sections import her2st

logger = logging.getLogger(__name__)

SOURCE = "synthetic"
MANIFEST = "SYNTHETIC_DATA.json"
GENERATOR_VERSION = 1
DOMAINS = ("tumour", "stroma", "immune", "adipose")
# Per domain: RGB base colour, nuclei per 10^4 px^2, nucleus radius (px), texture scale (px).
DOMAIN_STYLE = {
    "tumour": ((200, 120, 180), 18.0, 5, 2.0),
    "stroma": ((235, 160, 190), 4.0, 3, 6.0),
    "immune": ((190, 110, 190), 40.0, 3, 1.5),
    "adipose": ((245, 225, 235), 1.0, 3, 12.0),
}
NUCLEUS_RGB = np.array([70, 40, 120], dtype=np.float32)
BACKGROUND_RGB = np.array([242, 240, 244], dtype=np.float32)


class SyntheticConfig(BaseModel):
    """What the generator draws; the data set is a pure function of these values."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    seed: int = 0
    n_patients: int = Field(2, ge=1, le=26)
    sections_per_patient: int = Field(2, ge=1, le=9)
    grid_size: int = Field(14, ge=4, le=60, description="array positions per side")
    pitch_px: int = Field(120, ge=16, description="pixels between neighbouring spots")
    n_genes: int = Field(120, ge=len(DOMAINS))
    n_domain_seeds: int = Field(7, ge=2)
    mean_library_size: float = Field(800.0, gt=0)
    dispersion: float = Field(5.0, gt=0, description="negative binomial size parameter")


def section_names(config: SyntheticConfig) -> list[tuple[str, str]]:
    """``(section, patient)`` pairs, e.g. ``('SYN_A1', 'SYN_A')``."""
    letters = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    return [
        (f"SYN_{letters[p]}{s + 1}", f"SYN_{letters[p]}")
        for p in range(config.n_patients)
        for s in range(config.sections_per_patient)
    ]


def gene_names(config: SyntheticConfig) -> list[str]:
    """``SYN0001`` ... (no real gene symbol, so synthetic genes never pass for real ones)."""
    return [f"SYN{i + 1:04d}" for i in range(config.n_genes)]


def _gene_programme(config: SyntheticConfig) -> dict[str, np.ndarray]:
    """Per-gene baseline, domain effects and image-feature coefficients (shared by all sections)."""
    rng = np.random.default_rng([config.seed, 0])
    n = config.n_genes
    domain_effect = rng.normal(0.0, 0.4, size=(len(DOMAINS), n))
    markers = rng.permutation(n)[: len(DOMAINS) * max(1, n // 10)].reshape(len(DOMAINS), -1)
    for k, genes in enumerate(markers):
        domain_effect[k, genes] += rng.uniform(1.0, 2.0, size=genes.size)
    return {
        "baseline": rng.normal(-5.0, 1.0, size=n),
        "domain_effect": domain_effect,
        "density_coef": rng.normal(0.0, 0.6, size=n),
        "stain_coef": rng.normal(0.0, 0.4, size=n),
    }


def _draw_section(config: SyntheticConfig, index: int) -> tuple[np.ndarray, pd.DataFrame]:
    """Draw one section's image (uint8 H x W x 3) and spot table with domains and image features."""
    rng = np.random.default_rng([config.seed, 1, index])
    g, pitch = config.grid_size, config.pitch_px
    size = (g + 1) * pitch
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    centre = size / 2 + rng.normal(0, pitch / 3, size=2)
    radius = size * rng.uniform(0.38, 0.46)
    wobble = 1 + 0.08 * np.sin(3 * np.arctan2(yy - centre[1], xx - centre[0]) + rng.uniform(0, 6.3))
    tissue = np.hypot(xx - centre[0], yy - centre[1]) < radius * wobble

    seeds = rng.uniform(0, size, size=(config.n_domain_seeds, 2))
    seed_domain = np.concatenate([np.arange(len(DOMAINS)), rng.integers(0, len(DOMAINS), config.n_domain_seeds)])[
        : config.n_domain_seeds
    ]
    distance = (xx[None] - seeds[:, 0, None, None]) ** 2 + (yy[None] - seeds[:, 1, None, None]) ** 2
    domain = seed_domain[np.argmin(distance, axis=0)]
    del distance

    image = np.empty((size, size, 3), dtype=np.float32)
    image[:] = BACKGROUND_RGB
    nuclei = np.zeros((size, size), dtype=bool)
    for k, name in enumerate(DOMAINS):
        colour, density, nucleus_radius, texture_scale = DOMAIN_STYLE[name]
        where = tissue & (domain == k)
        noise = ndimage.gaussian_filter(rng.normal(0, 1, size=(size, size)).astype(np.float32), texture_scale)
        noise /= noise.std() + 1e-6
        image[where] = np.asarray(colour, dtype=np.float32) + 12.0 * noise[where, None]
        centres = where & (rng.random((size, size)) < density / 1e4)
        disk = (
            np.hypot(*np.mgrid[-nucleus_radius : nucleus_radius + 1, -nucleus_radius : nucleus_radius + 1])
            <= nucleus_radius
        )
        nuclei |= ndimage.binary_dilation(centres, structure=disk) & where
    image[nuclei] = 0.85 * NUCLEUS_RGB + 0.15 * image[nuclei]
    image = np.clip(image + rng.normal(0, 3, size=image.shape).astype(np.float32), 0, 255).astype(np.uint8)

    rows = []
    half = min(56, pitch // 2)
    for ay in range(g):
        for ax in range(g):
            px = (ax + 1) * pitch + rng.normal(0, 1.5)
            py = (ay + 1) * pitch + rng.normal(0, 1.5)
            cx, cy = int(px), int(py)
            if not tissue[cy, cx]:
                continue
            box = (slice(cy - half, cy + half), slice(cx - half, cx + half))
            rows.append(
                {
                    "x": ax + 1,
                    "y": ay + 1,
                    "pixel_x": px,
                    "pixel_y": py,
                    "domain": DOMAINS[domain[cy, cx]],
                    "nuclear_density": float(nuclei[box].mean()),
                    "stain": float(255.0 - image[box].mean()),
                }
            )
    return image, pd.DataFrame(rows)


def _draw_counts(config: SyntheticConfig, index: int, spots: pd.DataFrame, programme: dict) -> np.ndarray:
    rng = np.random.default_rng([config.seed, 2, index])
    density = (spots["nuclear_density"].to_numpy() - 0.08) / 0.08
    stain = (spots["stain"].to_numpy() - 60.0) / 30.0
    domain = spots["domain"].map({d: k for k, d in enumerate(DOMAINS)}).to_numpy()
    log_rate = (
        programme["baseline"][None, :]
        + programme["domain_effect"][domain]
        + programme["density_coef"][None, :] * density[:, None]
        + programme["stain_coef"][None, :] * stain[:, None]
    )
    rate = np.exp(log_rate)
    rate /= rate.sum(axis=1, keepdims=True)
    library = config.mean_library_size * rng.lognormal(0.0, 0.35, size=len(spots))
    mean = rate * library[:, None]
    shape = config.dispersion
    return rng.poisson(rng.gamma(shape, mean / shape)).astype(np.int64)


def generate(root: str | Path, config: SyntheticConfig) -> Path:
    """Write the synthetic data set under ``root`` in the her2st layout, unless it is already there.

    Returns:
        ``root``. An existing data set made with another configuration is replaced.
    """
    root = Path(root)
    manifest_path = root / MANIFEST
    wanted = {"generator_version": GENERATOR_VERSION, "config": config.model_dump()}
    if manifest_path.is_file():
        existing = json.loads(manifest_path.read_text())
        if {k: existing.get(k) for k in wanted} == wanted:
            return root
        logger.info("Synthetic data in %s was made with another configuration; regenerating", root)
    data = root / "data"
    for folder in ("ST-cnts", "ST-spotfiles", "ST-pat/lbl", "ST-imgs"):
        (data / folder).mkdir(parents=True, exist_ok=True)
    programme = _gene_programme(config)
    genes = gene_names(config)
    for index, (section, patient) in enumerate(section_names(config)):
        logger.info(
            "Drawing SYNTHETIC section %s (%d of %d)",
            section,
            index + 1,
            config.n_patients * config.sections_per_patient,
        )
        image, spots = _draw_section(config, index)
        counts = _draw_counts(config, index, spots, programme)
        spot_ids = spots["x"].astype(str) + "x" + spots["y"].astype(str)
        pd.DataFrame(counts, index=spot_ids, columns=genes).to_csv(
            data / "ST-cnts" / f"{section}.tsv.gz", sep="\t", compression={"method": "gzip", "mtime": 0}
        )
        selection = spots[["x", "y"]].assign(new_x=spots["x"].astype(float), new_y=spots["y"].astype(float))
        selection = selection.assign(pixel_x=spots["pixel_x"], pixel_y=spots["pixel_y"], selected=1)
        selection.to_csv(data / "ST-spotfiles" / f"{section}_selection.tsv", sep="\t", index=False)
        labels = pd.DataFrame(
            {
                "Row.names": spot_ids,
                "x": spots["x"],
                "y": spots["y"],
                "pixel_x": spots["pixel_x"],
                "pixel_y": spots["pixel_y"],
                "label": spots["domain"],
            }
        )
        labels.to_csv(data / "ST-pat" / "lbl" / f"{section}_labeled_coordinates.tsv", sep="\t", index=False)
        image_dir = data / "ST-imgs" / patient / section
        image_dir.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(image_dir / f"{section}_SYNTHETIC_HE.png", compress_level=1)  # lossless; fast
    manifest = dict(
        wanted,
        note="SYNTHETIC demo data drawn by thitogene_kedro.sections.synthetic; not real tissue or expression",
        sections=[s for s, _ in section_names(config)],
    )
    manifest_path.write_text(json.dumps(manifest, indent=1))
    return root


def section_ids(root: str | Path, config: SyntheticConfig) -> list[str]:
    """The synthetic sections (generated under ``root`` on first use)."""
    generate(root, config)
    return [s for s, _ in section_names(config)]


def image_path(root: str | Path, section: str, config: SyntheticConfig) -> Path | None:
    """The section's synthetic H&E image."""
    generate(root, config)
    return her2st.image_path(root, section, patient=dict(section_names(config))[section])


def is_synthetic_image(path: str | Path) -> bool:
    """Whether ``path`` lies in a generated synthetic data set (a folder above it holds its manifest)."""
    return any((folder / MANIFEST).is_file() for folder in Path(path).resolve().parents)


def read_section(root: str | Path, section: str, config: SyntheticConfig) -> ad.AnnData:
    """Read a synthetic section through the her2st reader; ``uns['source']`` is ``synthetic``."""
    generate(root, config)
    patients = dict(section_names(config))
    if section not in patients:
        raise ValueError(f"{root}: section {section}: not a synthetic section ({sorted(patients)})")
    adata = her2st.read_section(root, section, source=SOURCE, patient=patients[section])
    adata.uns["synthetic"] = True
    return adata
