"""Model inputs of one fold: per section, patches, positions, graph, targets and counts of the fold's genes."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

import anndata as ad
import numpy as np
from scipy import sparse

from thitogene_kedro.models import SectionExample
from thitogene_kedro.pipelines.preprocessing.nodes import MissingGenes, normalise_section
from thitogene_kedro.pipelines.preprocessing.params import NormalisationParams
from thitogene_kedro.sections.schema import SectionDataError

Loaders = Mapping[str, Callable[[], Any]]


class PreparedSection(NamedTuple):
    """A section's model input, its spot ids and the spots' full-resolution pixel centres ``(N, 2)``."""

    example: SectionExample
    spot_ids: np.ndarray
    spatial: np.ndarray


def section_example(
    section: str,
    raw: ad.AnnData,
    patches: np.ndarray,
    graph: Mapping[str, np.ndarray],
    genes: Sequence[str],
    normalisation: NormalisationParams,
    missing_genes: MissingGenes = "error",
) -> PreparedSection:
    """One section's model input, spot ids and pixel centres (``missing_genes``: see ``normalise_section``).

    Targets are recomputed from the raw counts for ``genes`` (the reference transform depends on
    the gene set); spots follow the graph's ``spot_ids``, the order the patches were cut in.

    Raises:
        SectionDataError: genes, spots or patches that do not match.
    """
    spot_ids = np.asarray(graph["spot_ids"]).astype(str)
    if len(patches) != len(spot_ids):
        raise SectionDataError(
            None, section, f"{len(patches)} patches but {len(spot_ids)} spots in the spot graph; rerun patching"
        )
    normalised = normalise_section(raw, list(genes), normalisation, missing_genes)
    absent = [s for s in spot_ids if s not in normalised.obs_names]
    if absent:
        raise SectionDataError(None, section, f"spot graph lists spots the counts lack: {absent[:5]}")
    normalised = normalised[spot_ids]
    counts = normalised.layers["counts"]
    counts = counts.toarray() if sparse.issparse(counts) else np.asarray(counts)
    example = SectionExample(
        section_id=section,
        patches=np.asarray(patches),
        positions=np.asarray(graph["positions"], dtype=np.int64),
        edge_index=np.asarray(graph["edge_index"], dtype=np.int64),
        targets=np.asarray(normalised.X, dtype=np.float32),
        counts=counts.astype(np.float32),
    )
    return PreparedSection(example, spot_ids, np.asarray(normalised.obsm["spatial"], dtype=np.float64))


def fold_examples(
    sections: Sequence[str],
    raw_sections: Loaders,
    section_patches: Loaders,
    spot_graphs: Loaders,
    genes: Sequence[str],
    normalisation: NormalisationParams,
    missing_genes: MissingGenes = "error",
) -> list[PreparedSection]:
    """:func:`section_example` for each of ``sections``, in order.

    Raises:
        SectionDataError: a section without patches or graph (not preprocessed, or no image).
    """
    out = []
    for section in sections:
        for name, loaders in (("patches", section_patches), ("spot graph", spot_graphs), ("counts", raw_sections)):
            if section not in loaders:
                raise SectionDataError(None, section, f"no {name} for this section; run the data pipelines first")
        out.append(
            section_example(
                section,
                raw_sections[section](),
                section_patches[section](),
                spot_graphs[section](),
                genes,
                normalisation,
                missing_genes,
            )
        )
    return out
