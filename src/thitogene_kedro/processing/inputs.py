"""Model inputs of one fold, built once: per section, patches (or frozen-encoder features),
positions, graph, targets and counts.

Patches, features and spot graphs each carry their ``spot_ids``; they are joined to each other and
to the counts by id, never by position.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import anndata as ad
import numpy as np
from scipy import sparse

from thitogene_kedro.models import SectionExample
from thitogene_kedro.processing.normalisation import MissingGenes, NormalisationParams, normalise_section
from thitogene_kedro.sections.schema import SectionDataError
from thitogene_kedro.sections.spatial_layout import section_mpp

Loaders = Mapping[str, Callable[[], Any]]


class PreparedSection(NamedTuple):
    """A section's model input, its spot ids, the spots' full-resolution pixel centres ``(N, 2)``
    and the µm per full-resolution pixel (from the spots' true size)."""

    example: SectionExample
    spot_ids: np.ndarray
    spatial: np.ndarray
    mpp: float


@dataclass(frozen=True)
class SectionArrays:
    """What the data pipelines stored for one section: its patches (or features) and its graph,
    each with its spot ids."""

    # {"patches": (N, H, W, 3) uint8, "spot_ids": (N,)} or {"features": (N, D) float32, "spot_ids": (N,)}
    patches: Mapping[str, np.ndarray]
    graph: Mapping[str, np.ndarray]  # {"edge_index", "positions", "spot_ids"}


def patches_in_order(section: str, patches: Mapping[str, np.ndarray], spot_ids: np.ndarray) -> np.ndarray:
    """The patches (or features) of ``spot_ids``, in that order, joined by spot id.

    Raises:
        SectionDataError: a spot without a patch (patches older than the graph: rerun patching).
    """
    kind = "features" if isinstance(patches, Mapping) and "features" in patches else "patches"
    rerun = "rerun the features pipeline" if kind == "features" else "rerun patching"
    if not isinstance(patches, Mapping) or "spot_ids" not in patches:
        raise SectionDataError(None, section, f"stored {kind} carry no spot ids (an older layout); {rerun}")
    row = {str(s): i for i, s in enumerate(np.asarray(patches["spot_ids"]).astype(str))}
    absent = [s for s in spot_ids if s not in row]
    if absent:
        label = "features" if kind == "features" else "patch"
        raise SectionDataError(None, section, f"no {label} for spots {absent[:5]} of the spot graph; {rerun}")
    order = np.fromiter((row[s] for s in spot_ids), dtype=np.int64, count=len(spot_ids))
    stored = np.asarray(patches[kind])
    return stored if np.array_equal(order, np.arange(len(stored))) else stored[order]


def section_example(
    section: str,
    raw: ad.AnnData,
    arrays: SectionArrays,
    genes: Sequence[str],
    normalisation: NormalisationParams,
    missing_genes: MissingGenes = "error",
) -> PreparedSection:
    """One section's model input, spot ids and pixel centres (``missing_genes``: see ``normalise_section``).

    Targets are recomputed from the raw counts for ``genes`` (the reference transform depends on
    the gene set); spots follow the graph's ``spot_ids``; patches and counts are joined to them by id.

    Raises:
        SectionDataError: genes, spots or patches that do not match.
    """
    graph = arrays.graph
    spot_ids = np.asarray(graph["spot_ids"]).astype(str)
    patches = patches_in_order(section, arrays.patches, spot_ids)
    normalised = normalise_section(raw, list(genes), normalisation, missing_genes)
    absent = [s for s in spot_ids if s not in normalised.obs_names]
    if absent:
        raise SectionDataError(None, section, f"spot graph lists spots the counts lack: {absent[:5]}")
    normalised = normalised[spot_ids]
    counts = normalised.layers["counts"]
    counts = counts.toarray() if sparse.issparse(counts) else np.asarray(counts)
    by_features = "features" in arrays.patches
    example = SectionExample(
        section_id=section,
        patches=None if by_features else patches,
        features=patches.astype(np.float32) if by_features else None,
        positions=np.asarray(graph["positions"], dtype=np.int64),
        edge_index=np.asarray(graph["edge_index"], dtype=np.int64),
        targets=np.asarray(normalised.X, dtype=np.float32),
        counts=counts.astype(np.float32),
    )
    spatial = np.asarray(normalised.obsm["spatial"], dtype=np.float64)
    return PreparedSection(example, spot_ids, spatial, section_mpp(raw))


@dataclass(frozen=True)
class SectionStores:
    """Per-section loaders of what the data pipelines stored: raw counts, patches, spot graphs."""

    counts: Loaders
    patches: Loaders
    graphs: Loaders

    def load(self, section: str) -> tuple[ad.AnnData, SectionArrays]:
        """Raises SectionDataError for a section without patches or graph (not preprocessed, or no image)."""
        for name, loaders in (("patches", self.patches), ("spot graph", self.graphs), ("counts", self.counts)):
            if section not in loaders:
                raise SectionDataError(None, section, f"no {name} for this section; run the data pipelines first")
        return self.counts[section](), SectionArrays(self.patches[section](), self.graphs[section]())


def prepare_sections(
    sections: Sequence[str],
    stores: SectionStores,
    genes: Sequence[str],
    normalisation: NormalisationParams,
    missing_genes: MissingGenes = "error",
) -> list[PreparedSection]:
    """:func:`section_example` for each of ``sections``, in order."""
    return [section_example(s, *stores.load(s), genes, normalisation, missing_genes) for s in sections]
