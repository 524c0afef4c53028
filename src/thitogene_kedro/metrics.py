"""Agreement between predicted and observed expression, computed one documented way.

Per held-out section (spots × genes):

- **PCC** per gene across the section's spots (``scipy.stats.pearsonr``, vectorised) and its
  two-sided p-value (t-test with n − 2 degrees of freedom). A gene whose prediction or target
  is constant has no PCC (NaN): it is **counted** (``genes_nan_pcc``) and enters the project's
  mean as 0 (``pcc_mean``), since a constant prediction carries no information. The reference's
  ``np.nanmean``, which drops those genes, is reported as ``pcc_mean_nan_dropped`` for
  comparison with published numbers.
- ``pcc_median`` (NaN as 0), ``mse`` and ``mae`` over all spots × genes.
"""

from __future__ import annotations

from collections.abc import Sequence

import anndata as ad
import numpy as np
import pandas as pd
from scipy import stats


def pearson_per_gene(prediction: np.ndarray, observed: np.ndarray) -> np.ndarray:
    """Pearson r per gene (column) across spots; NaN where either side is constant."""
    return pearson_with_p(prediction, observed)[0]


def pearson_with_p(prediction: np.ndarray, observed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(r, p)`` per gene: Pearson r across spots and its two-sided p-value (NaN where undefined)."""
    x = np.asarray(prediction, dtype=np.float64)
    y = np.asarray(observed, dtype=np.float64)
    if x.shape != y.shape or x.ndim != 2:
        raise ValueError(f"prediction {x.shape} and observed {y.shape} must be the same (spots, genes) shape")
    n = x.shape[0]
    xc, yc = x - x.mean(axis=0), y - y.mean(axis=0)
    scale = np.sqrt((xc**2).sum(axis=0) * (yc**2).sum(axis=0))
    constant = ~(scale > 0) | (np.ptp(x, axis=0) == 0) | (np.ptp(y, axis=0) == 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        r = np.clip((xc * yc).sum(axis=0) / scale, -1.0, 1.0)
        r[constant] = np.nan
        if n > 2:
            t = r * np.sqrt((n - 2) / np.maximum(1.0 - r**2, 1e-300))
            p = 2 * stats.t.sf(np.abs(t), df=n - 2)
        else:
            p = np.full_like(r, np.nan)
    p[np.isnan(r)] = np.nan
    return r, p


def section_metrics(prediction: np.ndarray, observed: np.ndarray) -> dict[str, float]:
    """The per-section summary described in the module docstring."""
    r, _ = pearson_with_p(prediction, observed)
    as_zero = np.nan_to_num(r, nan=0.0)
    error = np.asarray(prediction, dtype=np.float64) - np.asarray(observed, dtype=np.float64)
    return {
        "pcc_mean": float(as_zero.mean()),
        "pcc_median": float(np.median(as_zero)),
        "pcc_mean_nan_dropped": float(np.nanmean(r)) if np.isfinite(r).any() else float("nan"),
        "genes_nan_pcc": int(np.isnan(r).sum()),
        "mse": float(np.mean(error**2)),
        "mae": float(np.mean(np.abs(error))),
    }


def paired_comparison(a: np.ndarray, b: np.ndarray) -> dict[str, float]:
    """Two models' scores on the same sections (``a[i]`` and ``b[i]`` on section i): their means, the
    mean and median of ``a − b``, how often ``a`` wins, and a two-sided Wilcoxon signed-rank test
    (exact for small samples; NaN with fewer than two sections or no difference at all)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    difference = a - b
    test = stats.wilcoxon(difference) if len(difference) >= 2 and (difference != 0).any() else None
    nan = float("nan")
    return {
        "sections": len(difference),
        "pcc_mean_a": float(a.mean()) if len(a) else nan,
        "pcc_mean_b": float(b.mean()) if len(b) else nan,
        "mean_difference": float(difference.mean()) if len(difference) else nan,
        "median_difference": float(np.median(difference)) if len(difference) else nan,
        "wins": int((difference > 0).sum()),
        "wilcoxon_statistic": float(test.statistic) if test else nan,
        "wilcoxon_p": float(test.pvalue) if test else nan,
    }


def score_held_out(
    test_predictions: ad.AnnData, training_gene_means: Sequence[float], top_expressed: int
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Scores of one fold's held-out sections: the one place held-out predictions are scored.

    Returns:
        ``(sections, genes)``: one row per section (``metrics.section_metrics`` plus
        ``pcc_top_expressed``: the mean PCC over the ``top_expressed`` genes with the highest mean
        expression in the fold's *training* sections), and one row per section × gene (PCC,
        p-value, -log10 p, observed and predicted means).
    """
    fold = test_predictions.uns["fold"]["name"]
    genes = np.asarray(test_predictions.var_names)
    ranking = np.argsort(-np.asarray(training_gene_means), kind="stable")[:top_expressed]
    section_rows, gene_tables = [], []
    for section in pd.unique(test_predictions.obs["section"]):
        part = test_predictions[test_predictions.obs["section"] == section]
        predicted, observed = (
            np.asarray(part.X, dtype=np.float64),
            np.asarray(part.layers["observed"], dtype=np.float64),
        )
        r, p = pearson_with_p(predicted, observed)
        top = np.nan_to_num(r[ranking], nan=0.0)
        section_rows.append(
            {"fold": fold, "section": section, "spots": part.n_obs, "genes": part.n_vars}
            | section_metrics(predicted, observed)
            | {"pcc_top_expressed": float(top.mean())}
        )
        with np.errstate(divide="ignore"):
            neg_log_p = -np.log10(p)
        gene_tables.append(
            pd.DataFrame(
                {
                    "fold": fold,
                    "section": section,
                    "gene": genes,
                    "pcc": r,
                    "p_value": p,
                    "neg_log10_p": neg_log_p,
                    "observed_mean": observed.mean(axis=0),
                    "predicted_mean": predicted.mean(axis=0),
                }
            )
        )
    return pd.DataFrame(section_rows), pd.concat(gene_tables, ignore_index=True)


def match_clusters_to_labels(labels: np.ndarray, clusters: np.ndarray) -> np.ndarray:
    """Each cluster renamed after the label it shares most spots with, one label per cluster
    (Hungarian assignment on the contingency table, ``scipy.optimize.linear_sum_assignment``);
    a cluster left without a label (more clusters than labels) is named ``cluster <id>``.
    Renaming leaves the ARI as it was and lets a domain keep one colour across panels."""
    from scipy.optimize import linear_sum_assignment  # noqa: PLC0415

    table = pd.crosstab(pd.Series(np.asarray(clusters), name="cluster"), pd.Series(np.asarray(labels), name="label"))
    rows, columns = linear_sum_assignment(-table.to_numpy())
    names = {table.index[r]: str(table.columns[c]) for r, c in zip(rows, columns, strict=True)}
    return np.array([names.get(c, f"cluster {c}") for c in np.asarray(clusters)], dtype=object)
