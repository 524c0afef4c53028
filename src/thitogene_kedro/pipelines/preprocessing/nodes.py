"""Nodes of the preprocessing pipeline: section choice, gene selection, target normalisation."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from functools import partial
from typing import Any

import anndata as ad
import numpy as np
import pandas as pd

from thitogene_kedro.pipelines.preprocessing.params import PreprocessingParams
from thitogene_kedro.processing.genes import gene_selection_method, genes_from_statistics, section_gene_statistics
from thitogene_kedro.processing.normalisation import normalise_section
from thitogene_kedro.provenance import h5ad_safe
from thitogene_kedro.sections.choice import SectionLoaders, choose_sections
from thitogene_kedro.sections.spatial_layout import add_spatial_layout

logger = logging.getLogger(__name__)


def training_sections(sections: list[str], held_out: list[str]) -> list[str]:
    """The sections gene selection may look at: every chosen section that is not held out."""
    train = [s for s in sections if s not in set(held_out)]
    if not train:
        raise ValueError(
            "preprocessing.gene_selection_excludes excludes every section: nothing left to select genes on"
        )
    return train


def gene_statistics(
    raw_sections: SectionLoaders, gene_list: list[str] | None, params: PreprocessingParams
) -> dict[str, dict[str, object]]:
    """Per configured section, what the hvg_cut rule needs (empty when the genes come from a file).

    Computed once for all sections (sections without images count: the rule needs only counts);
    each consumer then combines the statistics of the sections it may look at.
    """
    params = PreprocessingParams.model_validate(params)
    if gene_selection_method(gene_list, params.gene_selection) == "file":
        return {}
    chosen = choose_sections(raw_sections, params.sections, params.gene_selection_excludes)
    logger.info("Gene statistics (HVGs, expressing spots) of %d section(s)", len(chosen))
    return {name: section_gene_statistics(load(), params.gene_selection) for name, load in chosen.items()}


def select_genes(
    raw_sections: SectionLoaders,
    gene_statistics: Mapping[str, Mapping[str, object]],
    gene_list: list[str] | None,
    params: PreprocessingParams,
) -> pd.DataFrame:
    """Choose the target genes, looking only at training sections (not ``gene_selection_excludes``).

    Returns:
        One row per gene in model order: ``gene``, ``method`` and, for the ``hvg_cut`` rule,
        ``n_spots_expressed`` and ``n_sections_hvg`` over the training sections.
    """
    params = PreprocessingParams.model_validate(params)
    chosen = choose_sections(raw_sections, params.sections, params.gene_selection_excludes)
    if gene_selection_method(gene_list, params.gene_selection) == "file":
        logger.info("Using the configured gene list: %d genes", len(gene_list))
        return pd.DataFrame({"gene": list(gene_list), "method": "file"})
    train = training_sections(list(chosen), params.gene_selection_excludes)
    missing = [s for s in train if s not in gene_statistics]
    if missing:
        raise ValueError(f"no gene statistics for sections {missing}; rerun the gene_statistics node")
    logger.info("Selecting genes by the hvg_cut rule on %d training section(s): %s", len(train), train)
    return genes_from_statistics(gene_statistics, train, params.gene_selection)


def normalise_sections(  # noqa: PLR0913, PLR0917 - a node: sections, images, previews, genes, provenance, settings
    raw_sections: SectionLoaders,
    raw_images: Mapping[str, Callable[[], Any]],
    raw_previews: Mapping[str, Callable[[], Any]],
    selected_genes: pd.DataFrame,
    gene_list: list[str] | None,
    run_provenance: dict[str, Any],
    params: PreprocessingParams,
) -> dict[str, Callable[[], ad.AnnData]]:
    """Per chosen section, a function that reads and normalises it (saved one at a time), in the
    spatial layout scanpy and squidpy read (``sections.spatial_layout``: the tissue from the
    full-resolution image, else from the section's tissue preview, else none), with its provenance
    in ``uns['provenance']``.

    A gene of the configured gene list that a section lacks is an error naming the list's file.
    """
    params = PreprocessingParams.model_validate(params)
    genes = selected_genes["gene"].astype(str).tolist()
    chosen = choose_sections(raw_sections, params.sections, params.gene_selection_excludes)
    method = gene_selection_method(gene_list, params.gene_selection)
    source = getattr(gene_list, "source", None) if method == "file" else None
    provenance = h5ad_safe({
        "genes": {"n": len(genes), "method": method, "file": str(source or "")},
        "normalisation": params.normalisation.model_dump(mode="json"),
        "code": run_provenance.get("code", {}), "mlflow": run_provenance.get("mlflow", {}),
    })  # fmt: skip

    def _one(name: str, load: Callable[[], ad.AnnData]) -> ad.AnnData:
        adata = normalise_section(load(), genes, params.normalisation, gene_source=source)
        adata.uns["provenance"] = provenance
        if name in raw_images:
            with raw_images[name]() as image:
                return add_spatial_layout(adata, name, image)
        if name in raw_previews:
            preview = raw_previews[name]()
            problem = preview.misalignment(adata.obsm["spatial"])
            if problem is None:
                return add_spatial_layout(adata, name, preview)
            logger.warning("Section %s: tissue preview %s unused: %s", name, preview.path, problem)
        return add_spatial_layout(adata, name, None)

    return {name: partial(_one, name, load) for name, load in chosen.items()}


def summarise_sections(preprocessed_sections: SectionLoaders, params: PreprocessingParams) -> pd.DataFrame:
    """One row per preprocessed section: spots, genes, zero-library spots, labels, image."""
    params = PreprocessingParams.model_validate(params)
    rows = []
    for name in sorted(preprocessed_sections):
        adata = preprocessed_sections[name]()
        image = adata.uns.get("image", {})
        rows.append(
            {
                "section": name,
                "patient": adata.uns.get("patient", ""),
                "source": adata.uns.get("source", ""),
                "n_spots": adata.n_obs,
                "n_genes": adata.n_vars,
                "n_zero_library": int(adata.obs["zero_library"].sum()),
                "median_library": float(np.median(adata.obs["library_size"])),
                "n_labelled": int(adata.obs["label"].notna().sum()),
                "image_present": bool(image.get("present", False)),
                "excluded_from_gene_selection": name in params.gene_selection_excludes,
                "target_mean": float(np.mean(adata.X)),
                "target_max": float(np.max(adata.X)),
            }
        )
    return pd.DataFrame(rows)
