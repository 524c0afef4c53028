"""A slide's resolution (microns per pixel) from its own metadata."""

from __future__ import annotations

from pathlib import Path

import tifffile
from PIL import Image


def metadata_mpp(path: Path) -> float | None:
    """Microns per pixel from the file: TIFF resolution tags (inch or cm), else Pillow's dpi."""
    try:
        if path.suffix.lower() in {".tif", ".tiff", ".svs"}:
            with tifffile.TiffFile(path) as tif:
                tags = tif.pages[0].tags
                resolution, unit = tags.get("XResolution"), tags.get("ResolutionUnit")
                if resolution is None or unit is None or int(unit.value) not in (2, 3):
                    return None
                numerator, denominator = resolution.value
                per_unit = numerator / denominator
                return (25_400.0 if int(unit.value) == 2 else 10_000.0) / per_unit if per_unit > 0 else None
        with Image.open(path) as opened:
            dpi = opened.info.get("dpi")
        return 25_400.0 / float(dpi[0]) if dpi and float(dpi[0]) > 0 else None
    except (OSError, ValueError, tifffile.TiffFileError):
        return None
