"""Reader for the cSCC legacy-ST data in the layout of GEO series GSE144240.

One folder holds, per section ``<patient>_ST_<rep>`` (e.g. ``P2_ST_rep1``)::

    GSM*_<section>_stdata.tsv[.gz]             spots x genes, index "{x}x{y}" (array coordinates)
    GSM*_spot_data-selection-<section>.tsv[.gz] x y new_x new_y pixel_x pixel_y selected
    GSM*_<section>.jpg                         full-resolution H&E

Spots are staggered legacy-ST positions; nothing here assumes her2st's pixel pitch. Counts and spot
table are joined with an inner join (as the reference does): the raw matrices hold every array
spot, the selection file only those under tissue, and the count spots outside it are dropped with
a logged count.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

import anndata as ad

from thitogene_kedro.sections.her2st import read_count_table, read_spot_table
from thitogene_kedro.sections.images import IMAGE_SUFFIXES, describe_section_image
from thitogene_kedro.sections.schema import SectionDataError, build_section, join_counts_and_spots

logger = logging.getLogger(__name__)

SOURCE = "cscc"
SECTION_PATTERN = re.compile(r"(P\d+_ST_rep\d+)_stdata\.tsv(\.gz)?$")
# The reference code's fold order: patients P2, P5, P9, P10 x replicates 1-3.
PAPER_SECTIONS = tuple(f"{p}_ST_rep{r}" for p in ("P2", "P5", "P9", "P10") for r in (1, 2, 3))


def _folder(root: str | Path) -> Path:
    folder = Path(root)
    if not folder.is_dir():
        raise SectionDataError(folder, None, "cSCC (GSE144240) folder does not exist")
    return folder


def _single(root: str | Path, section: str, pattern: re.Pattern, what: str, required: bool = True) -> Path | None:
    matches = sorted(p for p in _folder(root).iterdir() if pattern.search(p.name))
    if not matches:
        if required:
            raise SectionDataError(Path(root), section, f"no {what} file found (pattern {pattern.pattern!r})")
        return None
    if len(matches) > 1:
        raise SectionDataError(Path(root), section, f"several {what} files match: {[m.name for m in matches]}")
    return matches[0]


def section_ids(root: str | Path) -> list[str]:
    """Sections with a count file, sorted."""
    return sorted({m.group(1) for p in _folder(root).iterdir() if (m := SECTION_PATTERN.search(p.name))})


def patient_of(section: str) -> str:
    """``P2_ST_rep1`` -> ``P2``."""
    return section.split("_", maxsplit=1)[0]


def image_path(root: str | Path, section: str) -> Path | None:
    """The section's H&E image, or ``None``."""
    suffixes = "|".join(re.escape(s) for s in IMAGE_SUFFIXES)
    pattern = re.compile(rf"(^|_){re.escape(section)}({suffixes})$", re.IGNORECASE)
    return _single(root, section, pattern, "image", required=False)


def read_section(root: str | Path, section: str, source: str = SOURCE) -> ad.AnnData:
    """Read one GSE144240 section into the project schema."""
    counts_path = _single(
        root, section, re.compile(rf"(^|_){re.escape(section)}_stdata\.tsv(\.gz)?$"), "count (stdata)"
    )
    spots_path = _single(root, section, re.compile(rf"spot.*{re.escape(section)}.*\.tsv(\.gz)?$"), "spot selection")
    counts = read_count_table(counts_path, section)
    spots = read_spot_table(spots_path, section)
    counts, spots = join_counts_and_spots(counts, spots, counts_path, spots_path, section, how="inner")
    image = describe_section_image(image_path(root, section), spots, section, root, spots_path)
    return build_section(counts, spots, section=section, patient=patient_of(section), source=source, image=image)
