"""Spatial AnnData in the legacy layout as a SpatialData object (optional extra ``spatialdata``).

Per library (slide or section) of ``uns['spatial']``: its hires image as ``<library>_image`` with
the scale that maps it onto full-resolution pixels, and its spots as ``<library>_spots``, circles
at their true radius in full-resolution pixels; each library in its own coordinate system named
after it (sections of one AnnData are not registered to each other). One table annotates every
spots element (``region`` = the element, ``instance_id`` = the spot's row in it).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from thitogene_kedro.errors import ProjectError

INSTALL_HINT = "pip install 'thitogene-kedro[spatialdata]' (or: pip install -r requirements-spatialdata.txt)"


def spatialdata_module() -> Any:
    try:
        import spatialdata  # noqa: PLC0415 - an optional extra
    except ImportError as error:
        raise ProjectError(f"the SpatialData export needs the spatialdata package: {INSTALL_HINT}") from error
    return spatialdata


def to_spatialdata(adata: Any) -> Any:
    """``adata`` (legacy spatial layout, ``obs['library_id']`` where it holds several libraries) as
    a ``spatialdata.SpatialData``: images, spot circles and the expression table (``X``, layers, obs)."""
    sd = spatialdata_module()
    from spatialdata.models import Image2DModel, ShapesModel, TableModel  # noqa: PLC0415
    from spatialdata.transformations import Identity, Scale  # noqa: PLC0415

    libraries = adata.uns.get("spatial", {})
    if not libraries:
        raise ProjectError("the AnnData has no uns['spatial'] library (no tissue image): nothing to place the spots on")
    spot_library = (
        adata.obs["library_id"].astype(str).to_numpy()
        if "library_id" in adata.obs
        else np.full(adata.n_obs, next(iter(libraries)))
    )
    images, shapes = {}, {}
    region = np.empty(adata.n_obs, dtype=object)
    instance = np.zeros(adata.n_obs, dtype=np.int64)
    xy = np.asarray(adata.obsm["spatial"], dtype=np.float64)
    for library, found in libraries.items():
        chosen = np.flatnonzero(spot_library == library)
        factors = found["scalefactors"]
        scale = 1.0 / float(factors["tissue_hires_scalef"])
        images[f"{library}_image"] = Image2DModel.parse(
            np.transpose(np.asarray(found["images"]["hires"]), (2, 0, 1)), dims=("c", "y", "x"),
            transformations={library: Scale([scale, scale], axes=("y", "x"))},
        )  # fmt: skip
        shapes[f"{library}_spots"] = ShapesModel.parse(
            xy[chosen], geometry=0, radius=np.full(len(chosen), float(factors["spot_diameter_fullres"]) / 2),
            index=np.arange(len(chosen)), transformations={library: Identity()},
        )  # fmt: skip
        region[chosen], instance[chosen] = f"{library}_spots", np.arange(len(chosen))
    placed = pd.notna(region)
    table = adata[placed].copy()
    table.uns = {k: v for k, v in table.uns.items() if k != "spatial"}  # the images live in the SpatialData
    table.obs["region"] = pd.Categorical(region[placed])
    table.obs["instance_id"] = instance[placed]
    table = TableModel.parse(table, region=sorted(shapes), region_key="region", instance_key="instance_id")
    return sd.SpatialData(images=images, shapes=shapes, tables={"table": table})
