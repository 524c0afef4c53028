"""Tissue detection, the spot grid and resolution rescaling, on real HER2+ images."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import tifffile
from PIL import Image

from tests.conftest import C3_WINDOW, HER2ST_REAL
from thitogene_kedro.errors import ProjectError
from thitogene_kedro.models import ModelSpec, build_model
from thitogene_kedro.models.pyfunc import SpotExpressionPredictor
from thitogene_kedro.pipelines.inference.nodes import (
    cut_slide_patches,
    grid_spots,
    model_training_mpp,
    otsu_threshold,
    prepare_spots,
    tissue_mask,
)
from thitogene_kedro.pipelines.inference.params import InferenceParams
from thitogene_kedro.sections.her2st import image_path, read_spot_table
from thitogene_kedro.sections.images import SlideImage
from thitogene_kedro.sections.schema import SectionDataError
from thitogene_kedro.sections.tiff_slide import TiledTiffSlide, open_slide
from thitogene_kedro.training.artefacts import InputSettings, TrainedModel
from thitogene_kedro.training.folds import Fold


def small_predictor(inputs: InputSettings | None = None) -> SpotExpressionPredictor:
    """A randomly initialised small THItoGene for four genes, packaged as the registry stores it."""
    spec = ModelSpec(name="thitogene", preset="small")
    trained = TrainedModel(
        spec=spec, genes=["A", "B", "C", "D"], fold=Fold(name="final", test=(), train=("S",)),
        inputs=inputs or InputSettings(), state_dict=build_model(spec, 4).state_dict(),
    )  # fmt: skip
    return SpotExpressionPredictor(trained, "test")


MPP = 0.687  # her2st µm per pixel (291 px between spots 200 µm apart)


def test_otsu_splits_two_populations():
    values = np.concatenate([np.full(500, 60), np.full(500, 200)])
    assert 60 <= otsu_threshold(values) < 200


@pytest.mark.skipif(not HER2ST_REAL.is_dir(), reason="real her2st copy (../shared/data/her2st) not present")
def test_grid_covers_the_tissue_of_a_real_section():
    spots_table = read_spot_table(HER2ST_REAL / "data" / "ST-spotfiles" / "C3_selection.tsv", "C3")
    with SlideImage(image_path(HER2ST_REAL, "C3"), "C3") as image:
        thumbnail, scale = image.thumbnail(1000)
    mask = tissue_mask(thumbnail)
    assert 0.02 < mask.mean() < 0.6
    # the measured spots lie on tissue
    on = mask[(spots_table["pixel_y"] * scale).astype(int), (spots_table["pixel_x"] * scale).astype(int)]
    assert on.mean() > 0.9
    grid = grid_spots(mask, scale, 200 / MPP, 1)
    assert 0.6 * len(spots_table) < len(grid) < 1.6 * len(spots_table)
    # and the grid stays on the tissue: C3 has a pink stain haze beside it that is not tissue
    measured = spots_table[["pixel_x", "pixel_y"]].to_numpy()
    nearest = np.sqrt(((grid[["pixel_x", "pixel_y"]].to_numpy()[:, None] - measured[None]) ** 2).sum(-1)).min(1)
    assert (nearest > 1.5 * 200 / MPP).mean() <= 0.05
    assert grid[["array_x", "array_y"]].min().min() >= 1 and grid[["array_x", "array_y"]].max().max() < 64
    dense = grid_spots(mask, scale, 200 / MPP, 2)
    assert 3 * len(grid) < len(dense) < 5 * len(grid)


@pytest.mark.skipif(not C3_WINDOW.is_dir(), reason="real C3 fixture (../shared/data) not present")
def test_a_slide_scanned_at_half_resolution_gets_the_same_patches(tmp_path):
    spots = pd.read_csv(C3_WINDOW / "C3_window_selection.tsv", sep="\t")[["pixel_x", "pixel_y"]]
    full = Image.open(C3_WINDOW / "C3_window.jpg").convert("RGB")
    half = full.resize((full.width // 2, full.height // 2), Image.Resampling.LANCZOS)
    half.save(tmp_path / "half.png")
    full.save(tmp_path / "full.png")
    inside = spots[
        (spots > 120).all(axis=1) & (spots["pixel_x"] < full.width - 120) & (spots["pixel_y"] < full.height - 120)
    ]
    model = small_predictor().trained
    at_full = cut_slide_patches(SlideImage(tmp_path / "full.png"), inside, {"patch_px": 112, "patch_size": 112}, model)
    at_half = cut_slide_patches(
        SlideImage(tmp_path / "half.png"), inside / 2, {"patch_px": 56, "patch_size": 112}, model
    )
    assert at_half.shape == at_full.shape == (len(inside), 112, 112, 3)
    correlation = np.corrcoef(at_full.astype(float).ravel(), at_half.astype(float).ravel())[0, 1]
    assert correlation > 0.9
    mask = np.ones((100, 100), dtype=bool)
    assert len(grid_spots(mask, 1.0, 20, 1)) == 25 and len(grid_spots(mask, 0.5, 20, 1)) == 100  # pitch in full-res px


@pytest.mark.skipif(not C3_WINDOW.is_dir(), reason="real C3 fixture (../shared/data) not present")
def test_tiled_tiff_is_read_tile_by_tile_like_the_whole_image(tmp_path):
    pixels = np.asarray(Image.open(C3_WINDOW / "C3_window.jpg").convert("RGB"))
    path = tmp_path / "slide.tif"
    tifffile.imwrite(
        path,
        pixels,
        tile=(256, 256),
        compression="zlib",
        photometric="rgb",
        resolution=(1e4 / MPP, 1e4 / MPP),
        resolutionunit="CENTIMETER",
    )
    slide = open_slide(path)
    assert isinstance(slide, TiledTiffSlide) and (slide.width, slide.height) == (pixels.shape[1], pixels.shape[0])
    for x0, y0, w, h in [
        (0, 0, 112, 112),
        (300, 257, 112, 112),
        (-40, 10, 112, 112),
        (pixels.shape[1] - 50, pixels.shape[0] - 60, 112, 112),
    ]:
        region, padded = slide.read_region(x0, y0, w, h)
        expected, expected_padded = SlideImage(C3_WINDOW / "C3_window.jpg").read_region(x0, y0, w, h)
        np.testing.assert_array_equal(region, expected)
        assert padded == expected_padded
    assert len(slide._cache) <= 64  # memory is bounded by the tile cache
    thumbnail, scale = slide.thumbnail(400)
    reference = np.asarray(Image.fromarray(pixels).resize(thumbnail.shape[1::-1], Image.Resampling.BILINEAR))
    assert thumbnail.shape[2] == 3 and max(thumbnail.shape[:2]) == 400
    assert np.corrcoef(thumbnail.astype(float).ravel(), reference.astype(float).ravel())[0, 1] > 0.98
    assert open_slide(path).metadata_mpp() == pytest.approx(MPP)
    slide.close()


def test_a_file_that_is_not_a_tiff_is_named(tmp_path):
    bad = tmp_path / "bad.tif"
    bad.write_text("not a tiff")
    with pytest.raises(SectionDataError, match="bad.tif.*not a readable TIFF"):
        open_slide(bad)


def test_a_slide_without_tissue_is_an_error(tmp_path):
    blank = tmp_path / "blank.png"
    Image.new("RGB", (600, 500), (245, 245, 245)).save(blank)
    predictor = small_predictor()
    with pytest.raises(SectionDataError, match="blank.png.*no tissue found"):
        prepare_spots(SlideImage(blank), None, {"predictor": predictor}, InferenceParams(training_mpp=1.0, mpp=1.0))


def test_the_training_resolution_comes_from_the_model_unless_overridden(caplog):
    stored = small_predictor(InputSettings(mpp=MPP)).trained
    assert model_training_mpp(stored, InferenceParams()) == MPP
    assert model_training_mpp(stored, InferenceParams(training_mpp=MPP * 1.02)) == MPP * 1.02  # close: silent
    assert "overrides" not in caplog.text
    assert model_training_mpp(stored, InferenceParams(training_mpp=2 * MPP)) == 2 * MPP
    assert "inference.training_mpp 1.3740 overrides the model's own 0.6870 µm/px" in caplog.text
    older = small_predictor().trained  # a model file written before the resolution was stored
    with pytest.raises(ProjectError, match="stores no training µm/px.*set inference.training_mpp"):
        model_training_mpp(older, InferenceParams())
