"""Tiled TIFF slides read tile by tile, so a slide larger than memory can be patched.

Only the tiles a region touches are decoded (an LRU cache keeps the last ``cache_tiles``). The
thumbnail comes from the smallest pyramid level at least as large as asked (at most 4× larger),
read whole, else from level 0 tile by tile; peak memory is about that level or the thumbnail plus
the tile cache, never the whole slide. Decoding uses tifffile with imagecodecs: JPEG (shared
JPEGTables included), JPEG 2000, deflate, LZW and uncompressed tiles, as Aperio SVS, OME-TIFF and
generic pyramidal (Big)TIFF store them. Hamamatsu NDPI stores level 0 as one JPEG stream with
restart markers; tifffile turns the restart intervals its ``McuStarts`` tag lists into tiles, which
are read here like any other (an NDPI without that tag is refused with a conversion command).
"""

from __future__ import annotations

import math
from collections import OrderedDict
from pathlib import Path

import numpy as np
import tifffile
from PIL import Image

from thitogene_kedro.sections.images import SlideImage
from thitogene_kedro.sections.schema import SectionDataError

TIFF_SUFFIXES = {".tif", ".tiff", ".svs", ".ndpi"}


class TiledTiffSlide:
    """The same interface as :class:`~thitogene_kedro.sections.images.SlideImage`, for tiled TIFFs."""

    def metadata_mpp(self) -> float | None:
        """Microns per pixel from the file's own resolution metadata, or None."""
        from thitogene_kedro.sections.resolution import metadata_mpp  # noqa: PLC0415

        return metadata_mpp(self.path)

    def __init__(self, path: str | Path, section: str | None = None, cache_tiles: int = 64) -> None:
        self.path = Path(path)
        self.section = section
        try:
            self._tiff = tifffile.TiffFile(self.path)
        except (tifffile.TiffFileError, OSError, ValueError) as error:
            raise SectionDataError(self.path, section, f"not a readable TIFF ({error})") from error
        page = self._tiff.pages[0]
        if self._tiff.is_ndpi and not page.is_tiled:
            self._tiff.close()
            raise SectionDataError(
                self.path, section, "this Hamamatsu NDPI stores its full resolution as one JPEG stream without "
                "McuStarts, so it cannot be read tile by tile; convert it to a pyramidal TIFF (e.g. `vips tiffsave "
                "in.ndpi out.tif --tile --pyramid --compression jpeg`) and give that",
            )  # fmt: skip
        if not page.is_tiled or page.dtype != np.uint8 or page.samplesperpixel not in (3, 4):
            self._tiff.close()
            raise SectionDataError(self.path, section, "expected a tiled 8-bit RGB(A) TIFF")
        self._page = page
        self.width, self.height = int(page.imagewidth), int(page.imagelength)
        self.tile_width, self.tile_height = int(page.tilewidth), int(page.tilelength)
        self._across = math.ceil(self.width / self.tile_width)
        self._cache: OrderedDict[int, np.ndarray] = OrderedDict()
        self._cache_tiles = cache_tiles

    def _tile(self, tx: int, ty: int) -> np.ndarray:
        index = ty * self._across + tx
        if index in self._cache:
            self._cache.move_to_end(index)
            return self._cache[index]
        page = self._page
        if page.databytecounts[index] == 0:
            tile = np.full((self.tile_height, self.tile_width, 3), 255, dtype=np.uint8)
        else:
            tables = page.jpegtables  # read first: a lazily loaded tag moves the file position
            handle = self._tiff.filehandle
            handle.seek(page.dataoffsets[index])
            data = handle.read(page.databytecounts[index])
            try:  # ``jpegheader``: NDPI's restart intervals are decoded with the stream's own header
                segment, _, _ = page.decode(data, index, jpegtables=tables, jpegheader=page.jpegheader)
            except Exception as error:  # noqa: BLE001 - codec missing or corrupt tile
                raise SectionDataError(
                    self.path,
                    self.section,
                    f"cannot decode tile {index} ({error}): a corrupt tile or a codec imagecodecs lacks",
                ) from error
            tile = np.asarray(segment).reshape(self.tile_height, self.tile_width, -1)[..., :3]
        self._cache[index] = tile
        if len(self._cache) > self._cache_tiles:
            self._cache.popitem(last=False)
        return tile

    def read_region(self, x0: int, y0: int, width: int, height: int, pad_value: int = 255) -> tuple[np.ndarray, bool]:
        """The ``height × width × 3`` uint8 region at column ``x0``, row ``y0`` (outside: ``pad_value``)."""
        region = np.full((height, width, 3), pad_value, dtype=np.uint8)
        left, top = max(x0, 0), max(y0, 0)
        right, bottom = min(x0 + width, self.width), min(y0 + height, self.height)
        for ty in range(top // self.tile_height, (bottom - 1) // self.tile_height + 1 if bottom > top else 0):
            for tx in range(left // self.tile_width, (right - 1) // self.tile_width + 1 if right > left else 0):
                tile = self._tile(tx, ty)
                tile_x, tile_y = tx * self.tile_width, ty * self.tile_height
                a, b = max(left, tile_x), min(right, tile_x + self.tile_width)
                c, d = max(top, tile_y), min(bottom, tile_y + self.tile_height)
                region[c - y0 : d - y0, a - x0 : b - x0] = tile[c - tile_y : d - tile_y, a - tile_x : b - tile_x]
        padded = (left, top, right, bottom) != (x0, y0, x0 + width, y0 + height)
        return region, padded

    def _pyramid_level(self, max_px: int) -> tifffile.TiffPageSeries | None:
        """The smallest reduced level whose longer side is between ``max_px`` and 4 × ``max_px``."""
        series = self._tiff.series[0] if self._tiff.series else None
        fitting = []
        for level in series.levels[1:] if series is not None else []:
            page = level.keyframe
            longer = max(int(page.imagewidth), int(page.imagelength))
            if max_px <= longer <= 4 * max_px and page.dtype == np.uint8:
                fitting.append((longer, level))
        return min(fitting, key=lambda item: item[0])[1] if fitting else None

    def thumbnail(self, max_px: int) -> tuple[np.ndarray, float]:
        """The slide shrunk to at most ``max_px`` on its longer side (from a pyramid level if one fits)."""
        scale = min(1.0, max_px / max(self.width, self.height))
        out_w, out_h = max(1, round(self.width * scale)), max(1, round(self.height * scale))
        level = self._pyramid_level(max_px) if scale < 1.0 else None
        if level is not None:
            pixels = np.asarray(level.asarray())[..., :3]
            return np.asarray(Image.fromarray(pixels).resize((out_w, out_h), Image.Resampling.BILINEAR)), scale
        out = np.full((out_h, out_w, 3), 255, dtype=np.uint8)
        for ty in range(math.ceil(self.height / self.tile_height)):
            for tx in range(self._across):
                x0, y0 = tx * self.tile_width, ty * self.tile_height
                a, c = round(x0 * scale), round(y0 * scale)
                b = round(min(x0 + self.tile_width, self.width) * scale)
                d = round(min(y0 + self.tile_height, self.height) * scale)
                if b <= a or d <= c:
                    continue
                tile = self._tile(tx, ty)[
                    : min(self.tile_height, self.height - y0), : min(self.tile_width, self.width - x0)
                ]
                out[c:d, a:b] = np.asarray(Image.fromarray(tile).resize((b - a, d - c), Image.Resampling.BILINEAR))
        self._cache.clear()
        return out, scale

    def close(self) -> None:
        self._cache.clear()
        self._tiff.close()

    def __enter__(self) -> TiledTiffSlide:
        return self

    def __exit__(self, *exc) -> None:
        self._cache.clear()


def open_slide(path: str | Path, section: str | None = None) -> SlideImage | TiledTiffSlide:
    """A tiled TIFF is read tile by tile; any other image (JPEG, PNG, strip TIFF) is decoded whole."""
    path = Path(path)
    if path.suffix.lower() in TIFF_SUFFIXES:
        try:
            with tifffile.TiffFile(path) as tif:
                tiled = tif.pages[0].is_tiled or tif.is_ndpi  # an NDPI without McuStarts is refused there
        except (tifffile.TiffFileError, OSError, ValueError) as error:
            raise SectionDataError(path, section, f"not a readable TIFF ({error})") from error
        if tiled:
            return TiledTiffSlide(path, section)
    return SlideImage(path, section)
