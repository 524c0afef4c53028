"""H&E images: header checks and uint8 patch extraction without a float copy of the slide."""

from __future__ import annotations

import functools
import logging
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from thitogene_kedro.sections.schema import SectionDataError, check_spots_inside_image

logger = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".tif", ".tiff")
# Whole-slide H&E scans exceed Pillow's default decompression-bomb limit (~89 Mpx);
# her2st's are ~92 Mpx. Allow up to 2 Gpx, still refusing absurd headers.
MAX_IMAGE_PIXELS = 2_000_000_000


def read_image_header(path: str | Path, section: str | None = None) -> tuple[int, int]:
    """Return ``(width, height)`` of an image after checking that it is a complete image file.

    Only the header is decoded. A JPEG must end with its end-of-image marker, which catches
    truncated downloads before any pixel work.

    Raises:
        SectionDataError: missing file, not an image, or a truncated JPEG.
    """
    path = Path(path)
    if not path.is_file():
        raise SectionDataError(path, section, "image file does not exist")
    Image.MAX_IMAGE_PIXELS = MAX_IMAGE_PIXELS
    try:
        with Image.open(path) as image:
            image_format = image.format
            width, height = image.size
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
        raise SectionDataError(path, section, f"not a readable image ({error})") from error
    if image_format == "JPEG":
        with path.open("rb") as handle:
            handle.seek(-2, 2)
            if handle.read(2) != b"\xff\xd9":
                raise SectionDataError(path, section, "JPEG is truncated (no end-of-image marker)")
    return width, height


class SlideImage:
    """A full-resolution image decoded once as uint8 and read region by region."""

    def metadata_mpp(self) -> float | None:
        """Microns per pixel from the file's own resolution metadata, or None."""
        from thitogene_kedro.sections.resolution import metadata_mpp  # noqa: PLC0415

        return metadata_mpp(self.path)

    def __init__(self, path: str | Path, section: str | None = None):
        self.path = Path(path)
        self.section = section
        self.width, self.height = read_image_header(self.path, section)
        self._image: Image.Image | None = None

    def _decoded(self) -> Image.Image:
        if self._image is None:
            Image.MAX_IMAGE_PIXELS = MAX_IMAGE_PIXELS
            try:
                image = Image.open(self.path)
                image.load()
            except (OSError, SyntaxError, ValueError) as error:
                raise SectionDataError(
                    self.path, self.section, f"image cannot be decoded, corrupt or truncated ({error})"
                ) from error
            if image.mode != "RGB":
                image = image.convert("RGB")
            self._image = image
        return self._image

    def read_region(self, x0: int, y0: int, width: int, height: int, pad_value: int = 255) -> tuple[np.ndarray, bool]:
        """Return the ``height x width x 3`` uint8 region at column ``x0``, row ``y0``.

        Parts outside the image are filled with ``pad_value``. The second value tells whether
        any padding was needed.
        """
        image = self._decoded()
        left, top = max(x0, 0), max(y0, 0)
        right, bottom = min(x0 + width, self.width), min(y0 + height, self.height)
        inside = np.asarray(image.crop((left, top, right, bottom)), dtype=np.uint8)
        if (left, top, right, bottom) == (x0, y0, x0 + width, y0 + height):
            return inside, False
        region = np.full((height, width, 3), pad_value, dtype=np.uint8)
        if right > left and bottom > top:
            region[top - y0 : bottom - y0, left - x0 : right - x0] = inside
        return region, True

    def thumbnail(self, max_px: int) -> tuple[np.ndarray, float]:
        """The whole image shrunk so its longer side is at most ``max_px``, and the scale applied."""
        image = self._decoded()
        scale = min(1.0, max_px / max(self.width, self.height))
        size = (max(1, round(self.width * scale)), max(1, round(self.height * scale)))
        return np.asarray(image.resize(size, Image.Resampling.BILINEAR), dtype=np.uint8), scale

    def close(self) -> None:
        """Release the decoded pixels."""
        if self._image is not None:
            self._image.close()
            self._image = None

    def __enter__(self) -> SlideImage:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


# a her2st preview's background is black; tissue pixels are brighter than this in some channel
BLACK_BACKGROUND_MAX = 40
MIN_SPOTS_ON_TISSUE = 0.95


class TissuePreview:
    """A shrunk copy of a section's H&E (where the full-resolution image is not at hand) and its
    scale, preview pixels per full-resolution pixel. It draws the tissue under the spots in the
    spatial layout and the figures; patches are never cut from it."""

    def __init__(self, path: str | Path, scale: float, section: str | None = None, black_background: bool = False):
        self.path = Path(path)
        self.section = section
        self.scale = float(scale)
        self.black_background = black_background
        self.width, self.height = read_image_header(self.path, section)
        if not 0 < self.scale <= 1:
            raise SectionDataError(self.path, section, f"preview scale {scale!r} is not in (0, 1]; give preview "
                                   "pixels per full-resolution pixel")  # fmt: skip

    def misalignment(self, pixel_xy: np.ndarray) -> str | None:
        """Why the preview does not line up with the spots (full-resolution pixel centres), or ``None``.

        Spots must fall inside the preview and, on a preview with a black background (her2st's),
        on tissue: at least ``MIN_SPOTS_ON_TISSUE`` of them on a pixel brighter than the background.
        """
        xy = np.round(np.asarray(pixel_xy, dtype=np.float64) * self.scale).astype(np.int64)
        inside = (xy[:, 0] >= 0) & (xy[:, 1] >= 0) & (xy[:, 0] < self.width) & (xy[:, 1] < self.height)
        if not inside.all():
            return f"{int((~inside).sum())} spot centre(s) fall outside the {self.width}x{self.height} preview"
        if not self.black_background:
            return None
        with Image.open(self.path) as image:
            pixels = np.asarray(image.convert("RGB"))
        on_tissue = float(np.mean(pixels[xy[:, 1], xy[:, 0]].max(axis=1) > BLACK_BACKGROUND_MAX))
        if on_tissue < MIN_SPOTS_ON_TISSUE:
            return (f"only {on_tissue:.0%} of the spots fall on tissue (at least {MIN_SPOTS_ON_TISSUE:.0%} "
                    "expected): the preview and the spot table are not registered to each other")  # fmt: skip
        return None

    def thumbnail(self, max_px: int) -> tuple[np.ndarray, float]:
        """The preview shrunk so its longer side is at most ``max_px``, and its scale to full resolution."""
        Image.MAX_IMAGE_PIXELS = MAX_IMAGE_PIXELS
        with Image.open(self.path) as image:
            rgb = image.convert("RGB")
        shrink = min(1.0, max_px / max(self.width, self.height))
        size = (max(1, round(self.width * shrink)), max(1, round(self.height * shrink)))
        pixels = np.asarray(rgb.resize(size, Image.Resampling.BILINEAR) if shrink < 1 else rgb, dtype=np.uint8)
        return pixels, self.scale * size[0] / self.width

    def __enter__(self) -> TissuePreview:
        return self

    def __exit__(self, *exc) -> None:
        return None


@functools.cache
def read_scale_table(path: str | Path, column: str) -> dict[str, float]:
    """``{section: scale}`` from a CSV with ``section`` and ``column``.

    Raises:
        SectionDataError: the file is missing or lacks the columns.
    """
    path = Path(path)
    if not path.is_file():
        raise SectionDataError(path, None, "preview scale table does not exist")
    table = pd.read_csv(path)
    missing = [c for c in ("section", column) if c not in table.columns]
    if missing:
        raise SectionDataError(
            path, None, f"preview scale table lacks column(s) {missing}; it needs section and {column}"
        )
    table = table.dropna(subset=[column])
    return dict(zip(table["section"].astype(str), table[column].astype(float), strict=True))


def find_section_image(folder: Path) -> Path | None:
    """The single image file in ``folder`` (sorted, first match), or ``None``."""
    if not folder.is_dir():
        return None
    candidates = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if len(candidates) > 1:
        logger.warning("Several images in %s; using %s", folder, candidates[0].name)
    return candidates[0] if candidates else None


def describe_section_image(
    path: Path | None, spots: pd.DataFrame, section: str, searched: str | Path, spots_file: str | Path | None = None
) -> dict | None:
    """``{'path', 'width', 'height'}`` of a section's image after checking its header and that every
    spot centre (from ``spots_file``) lies inside it; ``None`` (logged) when the section has no image
    in ``searched``."""
    if path is None:
        logger.info("Section %s has no full-resolution image in %s; no patches (counts only)", section, searched)
        return None
    width, height = read_image_header(path, section)
    check_spots_inside_image(
        spots[["pixel_x", "pixel_y"]].to_numpy(), spots.index, width, height, path, section, spots_file=spots_file
    )
    return {"path": path, "width": width, "height": height}
