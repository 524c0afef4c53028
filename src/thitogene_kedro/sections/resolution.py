"""A slide's resolution (microns per pixel) from its own metadata.

In this order: the Aperio ``MPP`` of an SVS description, the OME-XML ``PhysicalSizeX`` of an
OME-TIFF, the TIFF resolution tags (inch or centimetre; Hamamatsu and most pyramidal TIFFs), and
Pillow's dpi for other images. None when the file says nothing usable.
"""

from __future__ import annotations

import re
from pathlib import Path

import tifffile
from PIL import Image

TIFF_LIKE = {".tif", ".tiff", ".svs", ".ndpi"}
_OME_SIZE = re.compile(r'PhysicalSizeX="([0-9.eE+-]+)"(?:[^>]*?PhysicalSizeXUnit="([^"]+)")?')
_UNIT_UM = {"µm": 1.0, "um": 1.0, "\u03bcm": 1.0, "nm": 1e-3, "mm": 1e3, "cm": 1e4, "m": 1e6}


def _aperio_mpp(tif: tifffile.TiffFile) -> float | None:
    if not tif.is_svs:
        return None
    value = tifffile.tifffile.svs_description_metadata(tif.pages[0].description).get("MPP")
    return float(value) if value else None


def _ome_mpp(tif: tifffile.TiffFile) -> float | None:
    if not tif.is_ome or not tif.ome_metadata:
        return None
    match = _OME_SIZE.search(tif.ome_metadata)
    if match is None:
        return None
    return float(match.group(1)) * _UNIT_UM.get(match.group(2) or "µm", 1.0)


def _tag_mpp(page: tifffile.TiffPage) -> float | None:
    resolution, unit = page.tags.get("XResolution"), page.tags.get("ResolutionUnit")
    if resolution is None or unit is None or int(unit.value) not in (2, 3):
        return None
    numerator, denominator = resolution.value
    per_unit = numerator / denominator if denominator else 0
    return (25_400.0 if int(unit.value) == 2 else 10_000.0) / per_unit if per_unit > 0 else None


def metadata_mpp(path: Path) -> float | None:
    """Microns per pixel from the file's own metadata, or None."""
    try:
        if path.suffix.lower() in TIFF_LIKE:
            with tifffile.TiffFile(path) as tif:
                for found in (_aperio_mpp(tif), _ome_mpp(tif), _tag_mpp(tif.pages[0])):
                    if found is not None and found > 0:
                        return found
                return None
        with Image.open(path) as opened:
            dpi = opened.info.get("dpi")
        return 25_400.0 / float(dpi[0]) if dpi and float(dpi[0]) > 0 else None
    except (OSError, ValueError, tifffile.TiffFileError):
        return None
