"""Sections for model tests: generated grids and the real 62-spot C3 window."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tests.conftest import C3_WINDOW
from thitogene_kedro.models import SectionExample
from thitogene_kedro.processing.normalisation import NormalisationParams, normalise_counts
from thitogene_kedro.processing.patches import PatchingParams, cut_patches
from thitogene_kedro.processing.spot_graphs import knn_edge_index
from thitogene_kedro.sections.images import SlideImage


def grid_section(
    n_spots: int, n_genes: int = 16, seed: int = 0, section_id: str = "S", patch_size: int = 112, side: int = 12
) -> SectionExample:
    """A section of ``n_spots`` on a ``side``-wide grid with random patches, targets and counts."""
    rng = np.random.default_rng(seed)
    positions = np.stack(np.meshgrid(np.arange(side), np.arange(side)), -1).reshape(-1, 2)[:n_spots] + 2
    counts = rng.poisson(2.0, (n_spots, n_genes)).astype(np.float32)
    return SectionExample(
        section_id=section_id,
        patches=rng.integers(0, 256, (n_spots, patch_size, patch_size, 3), dtype=np.uint8),
        positions=positions.astype(np.int64),
        edge_index=knn_edge_index(positions, 4),
        targets=np.log10(1 + counts),
        counts=counts,
    )


@pytest.fixture(scope="session")
def c3_window() -> SectionExample:
    """The real 62-spot crop of HER2+ section C3: patches, 785-gene targets, counts, 4-NN graph."""
    if not C3_WINDOW.is_dir():
        pytest.skip("real C3 fixture (../shared/data) not present")
    return read_c3_window()


def read_c3_window() -> SectionExample:
    """See :func:`c3_window`."""
    counts = pd.read_csv(C3_WINDOW / "C3_window_785genes.tsv.gz", sep="\t", index_col=0)
    spots = pd.read_csv(C3_WINDOW / "C3_window_selection.tsv", sep="\t")
    spots.index = [f"{round(x)}x{round(y)}" for x, y in zip(spots["x"], spots["y"], strict=True)]
    spots = spots.loc[counts.index]
    with SlideImage(C3_WINDOW / "C3_window.jpg", "C3") as image:
        patches, _ = cut_patches(image, spots[["pixel_x", "pixel_y"]].to_numpy(), PatchingParams())
    x = counts.to_numpy(dtype=np.float32)
    positions = spots[["x", "y"]].round().to_numpy(dtype=np.int64)
    return SectionExample(
        section_id="C3",
        patches=patches,
        positions=positions,
        edge_index=knn_edge_index(positions, 4),
        targets=normalise_counts(x, x.sum(axis=1), NormalisationParams()),
        counts=x,
    )
