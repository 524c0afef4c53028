"""Target normalisation: a raw section restricted to the target genes, with ``log_b(1 + s x / library)`` targets."""

from __future__ import annotations

import logging
from typing import Literal

import anndata as ad
import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field
from scipy import sparse

from thitogene_kedro.sections.schema import SectionDataError

logger = logging.getLogger(__name__)

MissingGenes = Literal["error", "zero"]


class NormalisationParams(BaseModel):
    """Target transform ``log_b(1 + scale * x / library)`` per spot.

    ``reference`` (default): log10, scale 1e4, library = sum over the selected genes, which is what
    the reference code computes (scprep 1.2.3) and what the published numbers come from.
    ``paper_cpm_ln``: the paper's wording, counts per million over the spot's total counts, then
    natural log.
    """

    model_config = ConfigDict(extra="forbid")

    method: Literal["reference", "paper_cpm_ln"] = "reference"
    zero_library: Literal["keep", "drop"] = Field(
        "keep", description="spots whose library is 0: keep as all-zero targets (reference) or drop them"
    )


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
    raw: ad.AnnData,
    genes: list[str],
    params: NormalisationParams,
    missing_genes: MissingGenes = "error",
    gene_source: str | None = None,
) -> ad.AnnData:
    """Restrict a raw section to ``genes`` (in order) and compute its targets.

    The result keeps the raw counts of those genes in ``layers['counts']``, the targets in ``X``,
    the library size and a zero-library flag in ``obs``, and the transform in ``uns``.
    ``missing_genes="zero"`` gives genes the count matrix lacks zero counts (logged); that is for
    held-out sections, whose genes were chosen without looking at them.

    Raises:
        SectionDataError: a selected gene is missing from the section (``missing_genes="error"``);
            the error names ``gene_source``, the gene list file the genes came from, when given.
    """
    params = NormalisationParams.model_validate(params)
    section = str(raw.uns.get("section", ""))
    missing = [g for g in genes if g not in raw.var_names]
    if missing and missing_genes == "error":
        problem = f"{len(missing)} of {len(genes)} selected genes are absent from the count matrix: {missing[:10]}"
        if gene_source is not None:
            problem = (
                f"{len(missing)} of the {len(genes)} genes of this gene list are absent from the count matrix of "
                f"section {section}: {missing[:10]}; use a gene list made for these sections "
                "or set preprocessing.gene_selection.method=hvg_cut"
            )
        raise SectionDataError(gene_source, None if gene_source else section, problem)
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
    out.uns = {k: raw.uns[k] for k in ("section", "patient", "source", "image", "synthetic", "spot") if k in raw.uns}
    out.uns["normalisation"] = {
        "method": params.method,
        "formula": "log10(1 + 1e4 * x / sum_selected(x))"
        if params.method == "reference"
        else "ln(1 + 1e6 * x / sum_all(x))",
        "zero_library": params.zero_library,
    }
    return out
