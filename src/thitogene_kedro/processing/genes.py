"""Target genes: a gene list file, or the reference's hvg_cut rule over the sections a fold may look at."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Literal

import anndata as ad
import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field
from scipy import sparse

from thitogene_kedro.errors import ProjectError

logger = logging.getLogger(__name__)


class GeneList(list[str]):
    """An ordered gene list that remembers the file it was read from (for messages that name it)."""

    def __init__(self, genes: list[str], source: str | None = None) -> None:
        super().__init__(genes)
        self.source = source


class GeneSelectionParams(BaseModel):
    """How the target genes are chosen.

    ``file``: the configured gene list, in its order. ``hvg_cut``: the reference rule — the top
    ``n_top_hvg`` highly variable genes of each training section, then genes expressed (count > 0)
    in more than ``min_spots_expressed`` training spots. ``auto``: the file when one is
    configured, else the rule.
    """

    model_config = ConfigDict(extra="forbid")

    method: Literal["auto", "file", "hvg_cut"] = "auto"
    n_top_hvg: int = Field(1000, gt=0)
    min_spots_expressed: int = Field(1000, ge=0)
    hvg_flavor: Literal["seurat", "cell_ranger"] = "seurat"


def section_hvgs(adata: ad.AnnData, n_top: int, flavor: str) -> set[str]:
    """The top ``n_top`` highly variable genes of one section (scanpy, on log1p of CP10k)."""
    import scanpy as sc  # noqa: PLC0415 - slow to import; only the hvg_cut rule needs it

    data = ad.AnnData(X=sparse.csr_matrix(adata.X, dtype=np.float32), var=pd.DataFrame(index=adata.var_names))
    sc.pp.normalize_total(data, target_sum=1e4)
    sc.pp.log1p(data)
    n_top = min(n_top, data.n_vars)
    sc.pp.highly_variable_genes(data, n_top_genes=n_top, flavor=flavor)
    return set(data.var_names[data.var["highly_variable"].to_numpy()])


def genes_from_statistics(
    statistics: Mapping[str, Mapping[str, object]], train: list[str], rule: GeneSelectionParams
) -> pd.DataFrame:
    """The hvg_cut rule over the ``train`` sections' statistics only.

    Genes that are highly variable in at least one training section, present in every training
    section, and expressed in more than ``min_spots_expressed`` training spots.
    """
    rule = GeneSelectionParams.model_validate(rule)
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
    widest = int(table["n_spots_expressed"].max()) if len(table) else 0
    table = table[table["n_spots_expressed"] > rule.min_spots_expressed].reset_index(drop=True)
    if table.empty:
        n_spots = sum(int(statistics[name].get("n_spots", 0)) for name in train)
        raise ProjectError(
            f"preprocessing.gene_selection.min_spots_expressed={rule.min_spots_expressed}: the hvg_cut rule kept no gene "
            f"on training sections {list(train)} ({n_spots} spots; the most widely expressed highly variable gene "
            f"is expressed in {widest}); give a gene list (for her2st set HER2ST_GENE_LIST to the published "
            f"785-gene list) or set preprocessing.gene_selection.min_spots_expressed below {widest}"
        )
    logger.info("hvg_cut kept %d genes (HVG union %d, present in every training section)", len(table), len(hvg_votes))
    return table


def gene_selection_method(gene_list: list[str] | None, rule: GeneSelectionParams) -> str:
    """``file`` or ``hvg_cut``: what ``auto`` means for this configuration."""
    method = GeneSelectionParams.model_validate(rule).method
    if method == "auto":
        method = "file" if gene_list is not None else "hvg_cut"
    if method == "file" and gene_list is None:
        raise ValueError(
            "preprocessing.gene_selection.method is 'file' but no gene list file is configured "
            "(catalog entry 'gene_list'; for her2st set HER2ST_GENE_LIST)"
        )
    return method


def section_gene_statistics(adata: ad.AnnData, rule: GeneSelectionParams) -> dict[str, object]:
    """What the hvg_cut rule needs from one section: its HVGs, spots expressing each gene, its genes."""
    rule = GeneSelectionParams.model_validate(rule)
    return {
        "hvgs": sorted(section_hvgs(adata, rule.n_top_hvg, rule.hvg_flavor)),
        "expressed": pd.Series(np.asarray((adata.X > 0).sum(axis=0)).ravel(), index=adata.var_names),
        "genes": list(adata.var_names),
        "n_spots": int(adata.n_obs),
    }
