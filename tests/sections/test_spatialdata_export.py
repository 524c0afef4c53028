"""Predictions in the legacy layout as SpatialData, written and read back with spatialdata."""

from __future__ import annotations

import warnings

import anndata as ad
import numpy as np
import pandas as pd
import pytest

from tests.conftest import C3_WINDOW
from thitogene_kedro.datasets import SpatialDataZarrDataset
from thitogene_kedro.errors import ProjectError
from thitogene_kedro.sections.images import SlideImage
from thitogene_kedro.sections.spatial_layout import spatial_library
from thitogene_kedro.sections.spatialdata_export import to_spatialdata

pytestmark = pytest.mark.skipif(not C3_WINDOW.is_dir(), reason="real C3 fixture (../shared/data) not present")


def two_section_predictions() -> ad.AnnData:
    """Held-out predictions of two sections on the real C3 image (as predict_fold lays them out)."""
    spots = pd.read_csv(C3_WINDOW / "C3_window_selection.tsv", sep="\t")
    xy = spots[["pixel_x", "pixel_y"]].to_numpy(dtype=np.float64)
    rng = np.random.default_rng(0)
    parts = []
    for section in ("C3", "C9"):
        part = ad.AnnData(X=rng.random((len(xy), 3)).astype(np.float32), obsm={"spatial": xy})
        part.layers["observed"] = rng.random((len(xy), 3)).astype(np.float32)
        part.obs_names = [f"{section}:{i}" for i in range(len(xy))]
        part.obs["library_id"] = section
        parts.append(part)
    adata = ad.concat(parts)
    adata.var_names = ["ERBB2", "GNAS", "SCD"]
    with SlideImage(C3_WINDOW / "C3_window.jpg", "C3") as image:
        library = spatial_library(image, 110.0, {"mpp": 100 / 110})
    adata.uns["spatial"] = {"C3": library, "C9": library}
    adata.uns["source"] = "held-out prediction"
    return adata


def test_predictions_round_trip_through_a_spatialdata_zarr_store(tmp_path):
    import spatialdata as sd  # noqa: PLC0415
    from spatialdata.transformations import get_transformation  # noqa: PLC0415

    adata = two_section_predictions()
    store = SpatialDataZarrDataset(str(tmp_path / "predictions.zarr"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # spatialdata's own deprecation notices
        store.save(to_spatialdata(adata))
        back = store.load()
    assert isinstance(back, sd.SpatialData) and set(back.shapes) == {"C3_spots", "C9_spots"}
    table = back.tables["table"]
    np.testing.assert_array_equal(np.asarray(table.X), np.asarray(adata.X))  # the expression, spot for spot
    np.testing.assert_array_equal(table.layers["observed"], adata.layers["observed"])
    assert table.obs["region"].tolist() == ["C3_spots"] * 62 + ["C9_spots"] * 62
    circles = back.shapes["C3_spots"]
    assert np.allclose(circles.radius, 55.0)  # the true diameter, 110 full-resolution px
    np.testing.assert_allclose(np.c_[circles.geometry.x, circles.geometry.y], adata.obsm["spatial"][:62])
    scale = get_transformation(back.images["C3_image"], "C3").to_affine_matrix(("y", "x"), ("y", "x"))
    hires = adata.uns["spatial"]["C3"]["scalefactors"]["tissue_hires_scalef"]
    assert np.allclose(np.diag(scale)[:2], 1 / hires)  # the hires image lands on full-resolution pixels
    assert "spatial" not in table.uns and table.uns["source"] == "held-out prediction"


def test_predictions_without_a_tissue_image_are_refused_with_the_reason():
    adata = two_section_predictions()
    del adata.uns["spatial"]
    with pytest.raises(ProjectError, match="no uns\\['spatial'\\] library"):
        to_spatialdata(adata)
