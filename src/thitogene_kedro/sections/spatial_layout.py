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


# a legacy ST spot's diameter: what a full-resolution pixel measures follows from the spots themselves
ST_SPOT_DIAMETER_UM = 100.0


def spot_geometry(uns: dict[str, Any], array_x: np.ndarray, pixel_x: np.ndarray) -> tuple[float, float, str]:
    """A section's spot diameter in full-resolution pixels and in µm, and where they come from: the
    reader's record (``uns['spot']``, Space Ranger's ``spot_diameter_fullres`` for Visium), else a
    legacy ST spot's (100 µm, half the fitted array pitch)."""
    spot = uns.get("spot") or {}
    if "diameter_fullres" in spot:
        diameter_um = float(spot["diameter_um"])
        return (
            float(spot["diameter_fullres"]),
            diameter_um,
            f"{spot.get('from', 'the reader')}: spots {diameter_um:g} µm across",
        )
    return st_spot_diameter_px(array_x, pixel_x), ST_SPOT_DIAMETER_UM, "legacy ST spots: 100 µm across, 200 µm apart"


def section_mpp(adata: Any) -> float:
    """µm per full-resolution pixel of a section (``sections.schema`` form), from its spots' true size."""
    diameter, diameter_um, _ = spot_geometry(
        dict(adata.uns), adata.obs["array_x"].to_numpy(), np.asarray(adata.obsm["spatial"])[:, 0]
    )
    return diameter_um / diameter


def section_spatial_library(
    image: Thumbnailed, uns: dict[str, Any], array_x: np.ndarray, pixel_x: np.ndarray
) -> dict[str, Any]:
    """A section's library (``spot_geometry`` gives the spot size); ``metadata['mpp']``, the µm per
    full-resolution pixel, follows from the spots' true diameter."""
    diameter, diameter_um, where = spot_geometry(uns, array_x, pixel_x)
    return spatial_library(image, diameter, {"mpp": diameter_um / diameter, "mpp_source": where})


def add_spatial_layout(adata: Any, library: str, image: Thumbnailed | None) -> Any:
    """A section (``sections.schema`` form) in the legacy spatial layout, in place and returned:
    ``obs`` ``in_tissue``/``array_row``/``array_col``/``library_id`` and, where it has an image,
    ``uns['spatial'][library]``. A section without an image gets no ``uns['spatial']`` (scanpy
    then asks for ``spot_size``, as for any AnnData without one)."""
    obs = adata.obs
    grid = spot_grid_columns(obs["array_x"].to_numpy(), obs["array_y"].to_numpy(), obs.index)
    for column in grid.columns:
        obs[column] = grid[column]
    obs["library_id"] = library
    if image is not None:
        spatial = np.asarray(adata.obsm["spatial"])
        layout = section_spatial_library(image, dict(adata.uns), obs["array_x"].to_numpy(), spatial[:, 0])
        if getattr(image, "path", None) is not None:  # which file the tissue was drawn from
            layout["metadata"]["image_file"] = str(image.path)
        adata.uns["spatial"] = {library: layout}
    return adata
