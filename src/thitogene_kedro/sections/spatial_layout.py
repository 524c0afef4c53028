"""The legacy spatial layout that scanpy and squidpy read as it is.

``uns['spatial'][<library>]`` holds ``images`` (``hires`` ≤ 2000 px and ``lowres`` ≤ 600 px on the
longer side, uint8 RGB), ``scalefactors`` (``tissue_hires_scalef``, ``tissue_lowres_scalef``:
image pixels per full-resolution pixel; ``spot_diameter_fullres`` in full-resolution pixels) and
``metadata``; ``obsm['spatial']`` holds full-resolution pixel centres and ``obs`` ``in_tissue``,
``array_row``, ``array_col``. So ``sc.pl.spatial(adata, color=gene)`` and
``sq.pl.spatial_scatter(adata, color=gene)`` draw the spots at their true size over the tissue.
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np
import pandas as pd

HIRES_PX = 2000
LOWRES_PX = 600


class Thumbnailed(Protocol):
    """What the layout needs of a slide: its shrunk copies (``SlideImage``, ``TiledTiffSlide``)."""

    def thumbnail(self, max_px: int) -> tuple[np.ndarray, float]: ...


def spatial_library(
    image: Thumbnailed, spot_diameter_fullres: float, metadata: dict[str, Any] | None = None
) -> dict[str, Any]:
    """One library of ``uns['spatial']``: the slide's hires and lowres images and their scale factors."""
    hires, hires_scale = image.thumbnail(HIRES_PX)
    lowres, lowres_scale = image.thumbnail(LOWRES_PX)
    return {
        "images": {"hires": np.ascontiguousarray(hires[..., :3], dtype=np.uint8),
                   "lowres": np.ascontiguousarray(lowres[..., :3], dtype=np.uint8)},
        "scalefactors": {"tissue_hires_scalef": float(hires_scale), "tissue_lowres_scalef": float(lowres_scale),
                         "spot_diameter_fullres": float(spot_diameter_fullres)},
        "metadata": dict(metadata or {}),
    }  # fmt: skip


def spot_grid_columns(array_x: np.ndarray, array_y: np.ndarray, index: pd.Index) -> pd.DataFrame:
    """``in_tissue`` (1: every spot predicted or measured lies on the tissue), ``array_row``, ``array_col``."""
    rows, columns = np.asarray(array_y, dtype=np.int64), np.asarray(array_x, dtype=np.int64)
    return pd.DataFrame({"in_tissue": 1, "array_row": rows, "array_col": columns}, index=index)
