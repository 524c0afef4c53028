"""Slides as scanners write them: tiled pyramidal TIFFs with JPEG, JPEG 2000 and deflate tiles,
Aperio SVS, OME-TIFF and Hamamatsu NDPI, read tile by tile with their resolution from their own
metadata."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from tests.conftest import C3_WINDOW, write_ndpi, write_slide
from thitogene_kedro.sections.resolution import metadata_mpp
from thitogene_kedro.sections.schema import SectionDataError
from thitogene_kedro.sections.tiff_slide import TiledTiffSlide, open_slide

pytestmark = pytest.mark.skipif(not C3_WINDOW.is_dir(), reason="real C3 fixture (../shared/data) not present")


@pytest.fixture(scope="module")
def tissue() -> np.ndarray:
    """A 640 × 896 crop of real H&E tissue (the C3 window)."""
    with Image.open(C3_WINDOW / "C3_window.jpg") as image:
        return np.asarray(image.convert("RGB"))[:640, :896].copy()


@pytest.mark.parametrize(
    ("flavour", "compression", "suffix", "tolerance"),
    [
        ("svs", "jpeg", ".svs", 6.0),  # Aperio: JPEG tiles, MPP in the description
        ("ome", "jpeg2000", ".ome.tif", 6.0),  # OME-TIFF, JPEG 2000 tiles, PhysicalSizeX
        ("tiff", "jpeg", ".tif", 6.0),  # generic pyramidal BigTIFF, resolution tags in cm
        ("tiff", "zlib", ".tiff", 0.0),  # deflate: lossless
    ],
)
def test_scanner_slides_open_tile_by_tile_with_their_own_resolution(tmp_path, tissue, flavour, compression, suffix,
                                                                    tolerance):  # fmt: skip
    path = write_slide(tmp_path / f"slide{suffix}", tissue, compression, 0.2527, flavour)
    assert metadata_mpp(path) == pytest.approx(0.2527, rel=1e-6)
    slide = open_slide(path)
    assert isinstance(slide, TiledTiffSlide) and (slide.width, slide.height) == (896, 640)
    with slide:
        region, padded = slide.read_region(100, 70, 300, 200)  # across tile borders
        edge, edge_padded = slide.read_region(850, 600, 100, 100)
    assert not padded and edge_padded
    assert np.abs(region.astype(float) - tissue[70:270, 100:400]).mean() <= tolerance
    assert (edge[40:, :] == 255).all() and np.abs(
        edge[:40, :46].astype(float) - tissue[600:, 850:]
    ).mean() <= tolerance + 2
    thumbnail, scale = slide.thumbnail(300)  # from the pyramid's 224 × 160 level up, not level 0's tiles
    assert thumbnail.shape == (round(640 * scale), round(896 * scale), 3) and max(thumbnail.shape) == 300
    expected = np.asarray(Image.fromarray(tissue).resize(thumbnail.shape[1::-1], Image.Resampling.BILINEAR))
    assert np.abs(thumbnail.astype(float) - expected).mean() < 12
    slide.close()


def test_a_hamamatsu_ndpi_opens_restart_interval_by_interval_with_its_own_resolution(tmp_path, tissue):
    path = write_ndpi(tmp_path / "slide.ndpi", tissue, mpp=0.4416, tile_width=128)
    assert metadata_mpp(path) == pytest.approx(0.4416, rel=1e-6)
    slide = open_slide(path)
    assert isinstance(slide, TiledTiffSlide) and (slide.width, slide.height) == (896, 640)
    assert (slide.tile_width, slide.tile_height) == (128, 16)  # one JPEG stream, read 16 × 128 at a time
    with slide:
        region, padded = slide.read_region(100, 70, 300, 200)
        thumbnail, scale = slide.thumbnail(300)  # no pyramid here: level 0, tile by tile
    assert not padded and np.abs(region.astype(float) - tissue[70:270, 100:400]).mean() <= 6.0
    expected = np.asarray(Image.fromarray(tissue).resize(thumbnail.shape[1::-1], Image.Resampling.BILINEAR))
    assert max(thumbnail.shape) == 300 and np.abs(thumbnail.astype(float) - expected).mean() < 12
    slide.close()

    without = write_ndpi(tmp_path / "strip.ndpi", tissue, mpp=0.4416, tile_width=128, mcu_starts=False)
    with pytest.raises(SectionDataError, match=r"strip\.ndpi: .*without McuStarts.*vips tiffsave"):
        open_slide(without)
