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
from PIL import Image

HIRES_PX = 2000
LOWRES_PX = 600


class Thumbnailed(Protocol):
    """What the layout needs of a slide: its shrunk copies (``SlideImage``, ``TiledTiffSlide``)."""

    def thumbnail(self, max_px: int) -> tuple[np.ndarray, float]: ...


def spatial_library(
    image: Thumbnailed, spot_diameter_fullres: float, metadata: dict[str, Any] | None = None
) -> dict[str, Any]:
    """One library of ``uns['spatial']``: the slide's hires and lowres images and their scale factors.

    The slide is shrunk once (hires); lowres is shrunk from hires, not read from the slide again.
    """
    hires, hires_scale = image.thumbnail(HIRES_PX)
    shrink = min(1.0, LOWRES_PX / max(hires.shape[:2]))
    size = (max(1, round(hires.shape[1] * shrink)), max(1, round(hires.shape[0] * shrink)))
    lowres = np.asarray(Image.fromarray(np.ascontiguousarray(hires[..., :3])).resize(size, Image.Resampling.BILINEAR))
    lowres_scale = hires_scale * size[0] / hires.shape[1]
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


# Legacy ST (her2st, cSCC, and the synthetic demo that imitates it): spots 100 µm across, centres
# 200 µm apart on the array grid, so a spot is half the array pitch across.
ST_SPOT_DIAMETER_PER_PITCH = 0.5


def st_spot_diameter_px(array_x: np.ndarray, pixel_x: np.ndarray) -> float:
    """A legacy ST spot's diameter in full-resolution pixels: half the array pitch, the pitch fitted
    from the spots' array columns and pixel centres (no µm/px needed)."""
    array_x, pixel_x = np.asarray(array_x, dtype=np.float64), np.asarray(pixel_x, dtype=np.float64)
    if np.ptp(array_x) == 0:
        return float("nan")
    pitch = abs(np.polyfit(array_x, pixel_x, 1)[0])
    return ST_SPOT_DIAMETER_PER_PITCH * float(pitch)
