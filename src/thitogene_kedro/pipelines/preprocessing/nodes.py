"""Nodes of the preprocessing pipeline: section choice, gene selection, target normalisation."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from functools import partial
from typing import Literal

import anndata as ad
import numpy as np
import pandas as pd
import scanpy as sc
from scipy import sparse

from thitogene_kedro.pipelines.preprocessing.params import NormalisationParams, PreprocessingParams
from thitogene_kedro.sections import cscc, her2st
from thitogene_kedro.sections.schema import SectionDataError

logger = logging.getLogger(__name__)

SectionLoaders = Mapping[str, Callable[[], ad.AnnData]]
MissingGenes = Literal["error", "zero"]


def paper_sections(available: SectionLoaders) -> list[str]:
    """The published protocol's sections that this source holds; absent ones are logged and skipped.

    Raises:
        ValueError: the source has no published section list (synthetic, Visium).
    """
    source = getattr(available, "source", None)
    name = getattr(source, "source", None)
    papers = {"her2st": her2st.PAPER_SECTIONS, "cscc": cscc.PAPER_SECTIONS}
    if name not in papers:
        raise ValueError(f"preprocessing.sections 'paper' needs a her2st or cSCC source, not {name!r}")
    missing = [s for s in papers[name] if s not in available]
    if missing:
        logger.warning(
            "The paper's %s list has %d section(s) this copy of the data lacks; they are skipped: %s",
            name, len(missing), missing,
        )  # fmt: skip
    return [s for s in papers[name] if s in available]


def choose_sections(available: SectionLoaders, params: PreprocessingParams) -> dict[str, Callable[[], ad.AnnData]]:
    """The configured sections' loaders, in the configured order.

    ``all``: every section of the source, sorted; ``paper``: the published protocol's sections in
    its fold order (those the data holds); a list: exactly those.

    Raises:
        ValueError: a listed or held-out section the source does not hold.
    """
    params = PreprocessingParams.model_validate(params)
    if params.sections == "all":
        names = sorted(available)
    elif params.sections == "paper":
        names = paper_sections(available)
    else:
        names = list(params.sections)
    missing = [s for s in [*names, *params.held_out_sections] if s not in available]
    if missing:
        raise ValueError(
            f"preprocessing.sections / held_out_sections name section(s) {missing} that the data source "
            f"does not hold; available: {sorted(available)}"
        )
    if len(set(names)) != len(names):
        raise ValueError(f"preprocessing.sections lists a section twice: {names}")
    return {name: available[name] for name in names}


def training_sections(sections: list[str], held_out: list[str]) -> list[str]:
    """The sections gene selection may look at: every chosen section that is not held out."""
    train = [s for s in sections if s not in set(held_out)]
    if not train:
        raise ValueError("preprocessing.held_out_sections holds out every section: nothing left to select genes on")
    return train


def section_hvgs(adata: ad.AnnData, n_top: int, flavor: str) -> set[str]:
    """The top ``n_top`` highly variable genes of one section (scanpy, on log1p of CP10k)."""
    data = ad.AnnData(X=sparse.csr_matrix(adata.X, dtype=np.float32), var=pd.DataFrame(index=adata.var_names))
    sc.pp.normalize_total(data, target_sum=1e4)
    sc.pp.log1p(data)
    n_top = min(n_top, data.n_vars)
    sc.pp.highly_variable_genes(data, n_top_genes=n_top, flavor=flavor)
    return set(data.var_names[data.var["highly_variable"].to_numpy()])


def gene_selection_method(gene_list: list[str] | None, params: PreprocessingParams) -> str:
    """``file`` or ``hvg_cut``: what ``auto`` means for this configuration."""
    method = params.gene_selection.method
    if method == "auto":
        method = "file" if gene_list is not None else "hvg_cut"
    if method == "file" and gene_list is None:
        raise ValueError(
            "preprocessing.gene_selection.method is 'file' but no gene list file is configured "
            "(catalog entry 'gene_list'; for her2st set HER2ST_GENE_LIST)"
        )
    return method


def section_gene_statistics(adata: ad.AnnData, params: PreprocessingParams) -> dict[str, object]:
    """What the hvg_cut rule needs from one section: its HVGs, spots expressing each gene, its genes."""
    params = PreprocessingParams.model_validate(params)
    rule = params.gene_selection
    return {
        "hvgs": sorted(section_hvgs(adata, rule.n_top_hvg, rule.hvg_flavor)),
        "expressed": pd.Series(np.asarray((adata.X > 0).sum(axis=0)).ravel(), index=adata.var_names),
        "genes": list(adata.var_names),
    }


def genes_from_statistics(
    statistics: Mapping[str, Mapping[str, object]], train: list[str], params: PreprocessingParams
) -> pd.DataFrame:
    """The hvg_cut rule over the ``train`` sections' statistics only.

    Genes that are highly variable in at least one training section, present in every training
    section, and expressed in more than ``min_spots_expressed`` training spots.
    """
    params = PreprocessingParams.model_validate(params)
    rule = params.gene_selection
    hvg_votes: dict[str, int] = {}
    expressed: pd.Series | None = None
    common: set[str] | None = None
    for name in train:
        stats = statistics[name]
        for gene in stats["hvgs"]:
            hvg_votes[gene] = hvg_votes.get(gene, 0) + 1
        expressed = stats["expressed"] if expressed is None else expressed.add(stats["expressed"], fill_value=0)
        common = set(stats["genes"]) if common is None else common & set(stats["genes"])
    candidates = [g for g in sorted(hvg_votes) if g in common]
    table = pd.DataFrame(
        {
            "gene": candidates,
            "method": "hvg_cut",
            "n_spots_expressed": [int(expressed[g]) for g in candidates],
            "n_sections_hvg": [hvg_votes[g] for g in candidates],
        }
    )
    table = table[table["n_spots_expressed"] > rule.min_spots_expressed].reset_index(drop=True)
    if table.empty:
        raise ValueError(
            f"the hvg_cut rule kept no gene: no highly variable gene is expressed in more than "
            f"preprocessing.gene_selection.min_spots_expressed={rule.min_spots_expressed} training spots"
        )
    logger.info("hvg_cut kept %d genes (HVG union %d, present in every training section)", len(table), len(hvg_votes))
    return table


def gene_statistics(
    raw_sections: SectionLoaders, gene_list: list[str] | None, params: PreprocessingParams
) -> dict[str, dict[str, object]]:
    """Per configured section, what the hvg_cut rule needs (empty when the genes come from a file).

    Computed once for all sections (sections without images count: the rule needs only counts);
    each consumer then combines the statistics of the sections it may look at.
    """
    params = PreprocessingParams.model_validate(params)
    if gene_selection_method(gene_list, params) == "file":
        return {}
    chosen = choose_sections(raw_sections, params)
    logger.info("Gene statistics (HVGs, expressing spots) of %d section(s)", len(chosen))
    return {name: section_gene_statistics(load(), params) for name, load in chosen.items()}


def select_genes(
    raw_sections: SectionLoaders,
    gene_statistics: Mapping[str, Mapping[str, object]],
    gene_list: list[str] | None,
    params: PreprocessingParams,
) -> pd.DataFrame:
    """Choose the target genes, looking only at training sections (not ``held_out_sections``).

    Returns:
        One row per gene in model order: ``gene``, ``method`` and, for the ``hvg_cut`` rule,
        ``n_spots_expressed`` and ``n_sections_hvg`` over the training sections.
    """
    params = PreprocessingParams.model_validate(params)
    chosen = choose_sections(raw_sections, params)
    if gene_selection_method(gene_list, params) == "file":
        logger.info("Using the configured gene list: %d genes", len(gene_list))
        return pd.DataFrame({"gene": list(gene_list), "method": "file"})
    train = training_sections(list(chosen), params.held_out_sections)
    missing = [s for s in train if s not in gene_statistics]
    if missing:
        raise ValueError(f"no gene statistics for sections {missing}; rerun the gene_statistics node")
    logger.info("Selecting genes by the hvg_cut rule on %d training section(s): %s", len(train), train)
    return genes_from_statistics(gene_statistics, train, params)


def normalise_counts(counts: np.ndarray, library: np.ndarray, params: NormalisationParams) -> np.ndarray:
    """``log_b(1 + scale * x / library)`` per spot; spots with library 0 give all-zero rows, never NaN."""
    params = NormalisationParams.model_validate(params)
    scale, log = (1e4, np.log10) if params.method == "reference" else (1e6, np.log1p)
    library = np.asarray(library, dtype=np.float64).reshape(-1, 1)
    safe = np.where(library > 0, library, 1.0)
    scaled = np.where(library > 0, scale * np.asarray(counts, dtype=np.float64) / safe, 0.0)
    values = np.log10(1.0 + scaled) if log is np.log10 else np.log1p(scaled)
    return values.astype(np.float32)


def normalise_section(
    raw: ad.AnnData, genes: list[str], params: NormalisationParams, missing_genes: MissingGenes = "error"
) -> ad.AnnData:
    """Restrict a raw section to ``genes`` (in order) and compute its targets.

    The result keeps the raw counts of those genes in ``layers['counts']``, the targets in ``X``,
    the library size and a zero-library flag in ``obs``, and the transform in ``uns``.
    ``missing_genes="zero"`` gives genes the count matrix lacks zero counts (logged); that is for
    held-out sections, whose genes were chosen without looking at them.

    Raises:
        SectionDataError: a selected gene is missing from the section (``missing_genes="error"``).
    """
    params = NormalisationParams.model_validate(params)
    section = str(raw.uns.get("section", ""))
    missing = [g for g in genes if g not in raw.var_names]
    if missing and missing_genes == "error":
        raise SectionDataError(
            None,
            section,
            f"{len(missing)} of {len(genes)} selected genes are absent from the count matrix: {missing[:10]}",
        )
    present = [g for g in genes if g in raw.var_names]
    found = raw[:, present].X
    found = found.toarray() if sparse.issparse(found) else np.asarray(found)
    counts = np.zeros((raw.n_obs, len(genes)), dtype=found.dtype)
    counts[:, [genes.index(g) for g in present]] = found
    if missing:
        logger.warning(
            "Section %s: %d of %d genes are absent from its count matrix and count as 0: %s",
            section, len(missing), len(genes), missing[:10],
        )  # fmt: skip
    if params.method == "reference":
        library = counts.sum(axis=1)
    else:
        library = np.asarray(raw.X.sum(axis=1)).ravel()
    zero = library == 0
    obs = raw.obs.copy()
    obs["library_size"] = library.astype(np.int64)
    obs["zero_library"] = zero
    keep = np.ones(len(obs), dtype=bool)
    if zero.any():
        if params.zero_library == "drop":
            keep = ~zero
            logger.warning(
                "Section %s: dropping %d spot(s) with library size 0: %s",
                section,
                int(zero.sum()),
                list(obs.index[zero]),
            )
        else:
            logger.info(
                "Section %s: %d spot(s) with library size 0 keep all-zero targets: %s",
                section,
                int(zero.sum()),
                list(obs.index[zero]),
            )
    targets = normalise_counts(counts, library, params)
    out = ad.AnnData(
        X=targets[keep],
        obs=obs.loc[keep],
        var=pd.DataFrame(index=pd.Index(genes, name="gene")),
        obsm={"spatial": np.asarray(raw.obsm["spatial"])[keep]},
        layers={"counts": sparse.csr_matrix(counts[keep].astype(np.int32))},
    )
    out.uns = {k: raw.uns[k] for k in ("section", "patient", "source", "image", "synthetic") if k in raw.uns}
    out.uns["normalisation"] = {
        "method": params.method,
        "formula": "log10(1 + 1e4 * x / sum_selected(x))"
        if params.method == "reference"
        else "ln(1 + 1e6 * x / sum_all(x))",
        "zero_library": params.zero_library,
    }
    return out


def normalise_sections(
    raw_sections: SectionLoaders, selected_genes: pd.DataFrame, params: PreprocessingParams
) -> dict[str, Callable[[], ad.AnnData]]:
    """Per chosen section, a function that reads and normalises it (saved one at a time)."""
    params = PreprocessingParams.model_validate(params)
    genes = selected_genes["gene"].astype(str).tolist()
    chosen = choose_sections(raw_sections, params)

    def _one(load: Callable[[], ad.AnnData]) -> ad.AnnData:
        return normalise_section(load(), genes, params.normalisation)

    return {name: partial(_one, load) for name, load in chosen.items()}


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
                "held_out": name in params.held_out_sections,
                "target_mean": float(np.mean(adata.X)),
                "target_max": float(np.max(adata.X)),
            }
        )
    return pd.DataFrame(rows)
