"""Agreement between predicted and observed expression (the field's per-gene PCC)."""

from __future__ import annotations

import numpy as np


def pearson_per_gene(prediction: np.ndarray, observed: np.ndarray) -> np.ndarray:
    """Pearson r per gene (column) across spots; NaN where either side is constant.

    This is ``scipy.stats.pearsonr`` per gene, as the reference ``get_R`` computes it, vectorised.
    """
    x = np.asarray(prediction, dtype=np.float64)
    y = np.asarray(observed, dtype=np.float64)
    if x.shape != y.shape or x.ndim != 2:
        raise ValueError(f"prediction {x.shape} and observed {y.shape} must be the same (spots, genes) shape")
    xc, yc = x - x.mean(axis=0), y - y.mean(axis=0)
    denominator = np.sqrt((xc**2).sum(axis=0) * (yc**2).sum(axis=0))
    with np.errstate(invalid="ignore", divide="ignore"):
        r = (xc * yc).sum(axis=0) / denominator
    r[~(denominator > 0)] = np.nan
    return np.clip(r, -1.0, 1.0)
