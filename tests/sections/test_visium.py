"""Visium reader on a Space Ranger ``outs/`` folder written by the test."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pandas as pd
import pytest
from PIL import Image

from thitogene_kedro.sections import visium
from thitogene_kedro.sections.schema import SectionDataError


def write_space_ranger_outs(
    folder, counts: np.ndarray, barcodes, genes, positions: pd.DataFrame, fullres: np.ndarray | None
):
    """Minimal Space Ranger output: filtered h5 (v3 layout), tissue_positions.csv, scalefactors, images."""
    outs = folder / "outs"
    (outs / "spatial").mkdir(parents=True)
    csc = counts.T  # features x barcodes, stored column-compressed by barcode
    data, indices, indptr = [], [], [0]
    for j in range(csc.shape[1]):
        nz = np.nonzero(csc[:, j])[0]
        data.extend(csc[nz, j])
        indices.extend(nz)
        indptr.append(len(data))
    with h5py.File(outs / visium.MATRIX_FILE, "w") as f:
        f.attrs["library_ids"] = np.array([b"lib1"])
        m = f.create_group("matrix")
        m["barcodes"] = np.array([b.encode() for b in barcodes])
        m["data"] = np.array(data, dtype=np.int32)
        m["indices"] = np.array(indices, dtype=np.int64)
        m["indptr"] = np.array(indptr, dtype=np.int64)
        m["shape"] = np.array(csc.shape, dtype=np.int32)
        feats = m.create_group("features")
        feats["id"] = np.array([f"ENSG{i:05d}".encode() for i in range(len(genes))])
        feats["name"] = np.array([g.encode() for g in genes])
        feats["feature_type"] = np.array([b"Gene Expression"] * len(genes))
        feats["genome"] = np.array([b"GRCh38"] * len(genes))
        feats["_all_tag_keys"] = np.array([b"genome"])
    positions.to_csv(outs / "spatial" / "tissue_positions.csv", index=False)
    (outs / "spatial" / "scalefactors_json.json").write_text(
        json.dumps(
            {
                "tissue_hires_scalef": 0.5,
                "tissue_lowres_scalef": 0.1,
                "spot_diameter_fullres": 20.0,
                "fiducial_diameter_fullres": 30.0,
            }
        )
    )
    for name in ("tissue_hires_image.png", "tissue_lowres_image.png"):
        Image.fromarray(np.zeros((10, 10, 3), dtype=np.uint8)).save(outs / "spatial" / name)
    if fullres is not None:
        Image.fromarray(fullres).save(folder / "fullres.tif")


def _fixture(tmp_path, fullres=True, genes=("GA", "GB", "GC")):
    barcodes = ["AAAC-1", "AAAG-1", "AACT-1"]
    counts = np.array([[1, 0, 3], [0, 2, 0], [5, 1, 1]])
    positions = pd.DataFrame(
        {
            "barcode": barcodes + ["TTTT-1"],
            "in_tissue": [1, 1, 1, 0],
            "array_row": [0, 0, 1, 1],
            "array_col": [0, 2, 1, 3],
            "pxl_row_in_fullres": [20, 20, 37, 37],
            "pxl_col_in_fullres": [30, 50, 40, 60],
        }
    )
    image = np.full((80, 90, 3), 200, dtype=np.uint8) if fullres else None
    write_space_ranger_outs(tmp_path / "V1", counts, barcodes, list(genes), positions, image)
    return counts


def test_reads_space_ranger_section(tmp_path):
    counts = _fixture(tmp_path)
    assert visium.section_ids(tmp_path) == ["V1"]
    adata = visium.read_section(tmp_path, "V1")
    assert list(adata.obs_names) == ["AAAC-1", "AAAG-1", "AACT-1"]
    np.testing.assert_array_equal(adata.X.toarray(), counts)
    np.testing.assert_array_equal(adata.obs["array_x"], [0, 2, 1])
    np.testing.assert_array_equal(adata.obs["array_y"], [0, 0, 1])
    np.testing.assert_allclose(adata.obsm["spatial"], [[30, 20], [50, 20], [40, 37]])
    assert adata.uns["image"]["present"] and adata.uns["image"]["width"] == 90
    assert adata.uns["source"] == "visium"


def test_without_fullres_image_is_counts_only(tmp_path):
    _fixture(tmp_path, fullres=False)
    adata = visium.read_section(tmp_path, "V1")
    assert not adata.uns["image"]["present"]


def test_duplicate_gene_symbols_are_made_unique(tmp_path, caplog):
    _fixture(tmp_path, genes=("GA", "GA", "GC"))
    with caplog.at_level("INFO"):
        adata = visium.read_section(tmp_path, "V1")
    assert adata.var_names.is_unique
    assert "made unique" in caplog.text


def test_missing_matrix_is_named(tmp_path):
    (tmp_path / "V2").mkdir()
    with pytest.raises(SectionDataError, match="V2.*filtered_feature_bc_matrix.h5.*does not exist"):
        visium.read_section(tmp_path, "V2")


def test_without_fullres_image_space_rangers_hires_image_draws_the_tissue(tmp_path):
    """No full-resolution image: the tissue preview is ``spatial/tissue_hires_image.png`` at its
    ``tissue_hires_scalef``; the spatial layout then draws spots of Space Ranger's diameter on it."""
    from thitogene_kedro.datasets import SectionPreviewsDataset  # noqa: PLC0415
    from thitogene_kedro.sections.spatial_layout import add_spatial_layout  # noqa: PLC0415

    _fixture(tmp_path, fullres=False)
    hires = np.full((45, 40, 3), 180, dtype=np.uint8)  # 90 x 80 full-resolution px at scale 0.5
    Image.fromarray(hires).save(tmp_path / "V1" / "outs" / "spatial" / "tissue_hires_image.png")
    previews = SectionPreviewsDataset(source="visium", path=str(tmp_path)).load()
    preview = previews["V1"]()
    assert preview.scale == 0.5 and preview.misalignment(np.array([[30, 20], [50, 20], [40, 37]])) is None
    assert "outside" in preview.misalignment(np.array([[30, 20], [85, 20]]))  # 42.5 px > the 40 px preview
    adata = add_spatial_layout(visium.read_section(tmp_path, "V1"), "V1", preview)
    layout = adata.uns["spatial"]["V1"]
    assert layout["scalefactors"]["tissue_hires_scalef"] == 0.5
    assert layout["scalefactors"]["spot_diameter_fullres"] == 20.0
    assert layout["images"]["hires"].shape == (45, 40, 3)
    assert layout["metadata"]["mpp"] == pytest.approx(55 / 20)
    # with its full-resolution image, a section has no preview: the full image is used
    write_space_ranger_outs(tmp_path / "V2", np.ones((1, 3), int), ["AAAC-1"], ["GA", "GB", "GC"],
                            pd.DataFrame({"barcode": ["AAAC-1"], "in_tissue": [1], "array_row": [0], "array_col": [0],
                                          "pxl_row_in_fullres": [5], "pxl_col_in_fullres": [5]}),
                            np.zeros((20, 20, 3), dtype=np.uint8))  # fmt: skip
    assert sorted(SectionPreviewsDataset(source="visium", path=str(tmp_path)).load()) == ["V1"]
