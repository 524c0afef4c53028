"""Patching: exact crops, border padding, determinism, orientation, skipped sections."""

from __future__ import annotations

import numpy as np
import pytest

from tests.conftest import toy_section_tables, write_her2st_section
from thitogene_kedro.datasets import SectionImagesDataset, SpatialSectionsDataset
from thitogene_kedro.pipelines.patching.nodes import extract_section_patches
from thitogene_kedro.processing.patches import PatchingParams, cut_patches, patch_origins
from thitogene_kedro.sections.images import SlideImage
from thitogene_kedro.sections.schema import SectionDataError


def test_patch_matches_direct_crop(toy_her2st):
    counts, spots, image = toy_section_tables()
    path = next((toy_her2st / "data" / "ST-imgs" / "A" / "A1").iterdir())
    xy = spots[["pixel_x", "pixel_y"]].to_numpy()
    with SlideImage(path) as slide:
        patches, padded = cut_patches(slide, xy, PatchingParams(patch_size=16))
    assert patches.shape == (len(spots), 16, 16, 3) and patches.dtype == np.uint8
    assert not padded.any()
    for i in (0, 5, len(spots) - 1):
        cx, cy = int(np.floor(xy[i, 0])), int(np.floor(xy[i, 1]))
        np.testing.assert_array_equal(patches[i], image[cy - 8 : cy + 8, cx - 8 : cx + 8])


def test_border_patches_are_padded_and_counted(toy_her2st):
    path = next((toy_her2st / "data" / "ST-imgs" / "A" / "A1").iterdir())
    xy = np.array([[3.7, 100.0], [100.0, 100.0]])
    with SlideImage(path) as slide:
        patches, padded = cut_patches(slide, xy, PatchingParams(patch_size=20, pad_value=7))
    assert padded.tolist() == [True, False]
    assert (patches[0][:, :7] == 7).all() and not (patches[0][:, 7:] == 7).all()


def test_reference_orientation_is_the_transpose(toy_her2st):
    path = next((toy_her2st / "data" / "ST-imgs" / "A" / "A1").iterdir())
    xy = np.array([[60.2, 90.9]])
    with SlideImage(path) as slide:
        standard, _ = cut_patches(slide, xy, PatchingParams(patch_size=12))
        reference, _ = cut_patches(slide, xy, PatchingParams(patch_size=12, orientation="reference_transposed"))
    np.testing.assert_array_equal(reference[0], standard[0].transpose(1, 0, 2))


def test_patch_origins_floor_the_centre():
    np.testing.assert_array_equal(patch_origins(np.array([[10.9, 20.1]]), 112), [[10 - 56, 20 - 56]])


def _sections(root):
    return SpatialSectionsDataset(source="her2st", path=str(root)).load()


def test_sections_without_image_are_skipped_and_runs_are_bit_identical(toy_her2st, caplog):
    images = SectionImagesDataset(source="her2st", path=str(toy_her2st)).load()
    with caplog.at_level("WARNING"):
        first, report = extract_section_patches(_sections(toy_her2st), images, PatchingParams(patch_size=32))
    second, _ = extract_section_patches(_sections(toy_her2st), images, PatchingParams(patch_size=32))
    assert list(first) == ["A1"]
    assert first["A1"]["patches"].tobytes() == second["A1"]["patches"].tobytes()
    assert first["A1"]["spot_ids"].tolist() == list(_sections(toy_her2st)["A1"]().obs_names)  # ids travel with patches
    assert "skipping section A2: it has no full-resolution image" in caplog.text
    assert report.set_index("section").loc["A2", "status"] == "skipped: no image"
    assert report.set_index("section").loc["A1", "n_spots"] == 16


def test_corrupt_image_data_fails_with_section_and_file(tmp_path):
    counts, spots, image = toy_section_tables()
    write_her2st_section(tmp_path, "A1", counts, spots, image, image_name="HE.jpg")
    path = next((tmp_path / "data" / "ST-imgs" / "A" / "A1").iterdir())
    data = bytearray(path.read_bytes())
    data[400:2000] = b"\x00" * 1600  # garbage inside the entropy-coded data, end marker intact
    path.write_bytes(bytes(data))
    try:
        with SlideImage(path, "A1") as slide:
            cut_patches(slide, spots[["pixel_x", "pixel_y"]].to_numpy(), PatchingParams(patch_size=8))
    except SectionDataError as error:
        assert "section A1" in str(error) and str(path) in str(error)
    else:  # libjpeg may decode damaged data without an error; the header checks still hold
        pytest.skip("this libjpeg decodes the damaged stream without complaint")
