"""Reader for the HER2+ breast cancer data in the public layout of ``almaan/her2st``.

::

    <root>/data/ST-cnts/<section>.tsv[.gz]                     spots x genes, index "{x}x{y}"
    <root>/data/ST-spotfiles/<section>_selection.tsv           x y new_x new_y pixel_x pixel_y selected
    <root>/data/ST-pat/lbl/<section>_labeled_coordinates.tsv   Row.names x y pixel_x pixel_y label
    <root>/data/ST-imgs/<patient>/<section>/*.jpg              full-resolution H&E
    <root>/app/www/imgs/<section>_HE_image_dark.png            2000 px tissue preview (some sections)

The previews carry no scale of their own: ``preview_scales`` names a CSV with ``section`` and
``lowres_scale`` (preview pixels per full-resolution pixel) for sections whose preview should
draw the tissue where the full-resolution image is absent. The patient is the section's first letter. The count matrix defines the spots (left join onto the
spot table); spot-table rows without counts are dropped with a logged reason.
"""

from __future__ import annotations

import logging
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd

from thitogene_kedro.sections.images import describe_section_image, find_section_image, read_scale_table
from thitogene_kedro.sections.schema import (
    SectionDataError,
    build_section,
    join_counts_and_spots,
    validate_counts,
)

logger = logging.getLogger(__name__)

SOURCE = "her2st"
COUNT_SUFFIXES = (".tsv.gz", ".tsv")
SPOT_COLUMNS = ("x", "y", "pixel_x", "pixel_y")
LABEL_COLUMNS = ("x", "y", "label")
# The reference code's 32 sections (sorted names, items 1..32): patients A-G without A1.
PAPER_SECTIONS = tuple(
    [f"A{i}" for i in range(2, 7)]
    + [f"B{i}" for i in range(1, 7)]
    + [f"C{i}" for i in range(1, 7)]
    + [f"D{i}" for i in range(1, 7)]
    + [f"E{i}" for i in range(1, 4)]
    + [f"F{i}" for i in range(1, 4)]
    + [f"G{i}" for i in range(1, 4)]
)
# The pathologist-annotated sections the paper clusters (k = classes without 'undetermined').
ANNOTATED_SECTIONS = ("B1", "C1", "D1", "E1", "F1", "G2")


def data_dir(root: str | Path) -> Path:
    """``<root>/data``, with a clear error when the folder is not a her2st checkout."""
    folder = Path(root) / "data"
    if not (folder / "ST-cnts").is_dir():
        raise SectionDataError(
            folder / "ST-cnts",
            None,
            "her2st count folder not found; clone the public almaan/her2st repository there "
            "(or point HER2ST_DIR at a copy)",
        )
    return folder


def count_file(root: str | Path, section: str) -> Path:
    """The section's count file (``.tsv.gz`` preferred over ``.tsv``)."""
    folder = data_dir(root) / "ST-cnts"
    found = [folder / f"{section}{suffix}" for suffix in COUNT_SUFFIXES if (folder / f"{section}{suffix}").is_file()]
    if not found:
        raise SectionDataError(folder / f"{section}.tsv.gz", section, "count file does not exist")
    if len(found) > 1:
        logger.info("Section %s has both %s; reading %s", section, [p.name for p in found], found[0].name)
    return found[0]


def section_ids(root: str | Path) -> list[str]:
    """Sections with a count file, sorted."""
    names = set()
    for path in (data_dir(root) / "ST-cnts").iterdir():
        for suffix in COUNT_SUFFIXES:
            if path.name.endswith(suffix):
                names.add(path.name[: -len(suffix)])
    return sorted(names)


def patient_of(section: str) -> str:
    """The patient letter of a her2st section id (``B4`` -> ``B``)."""
    return section[0]


def image_path(root: str | Path, section: str, patient: str | None = None) -> Path | None:
    """The section's full-resolution image, or ``None`` when the copy has none."""
    return find_section_image(data_dir(root) / "ST-imgs" / (patient or patient_of(section)) / section)


def preview(root: str | Path, section: str, preview_scales: str | Path | None = None) -> tuple[Path, float] | None:
    """The section's tissue preview (``app/www/imgs``) and its scale from ``preview_scales``, or
    ``None`` (logged) when there is no preview or no scale for it."""
    path = Path(root) / "app" / "www" / "imgs" / f"{section}_HE_image_dark.png"
    if not path.is_file():
        return None
    if preview_scales is None:
        logger.info("Section %s: preview %s unused; its scale comes from a preview_scales table", section, path.name)
        return None
    scale = read_scale_table(preview_scales, "lowres_scale").get(section)
    if scale is None:
        logger.info("Section %s: preview %s unused; %s has no row for it", section, path.name, preview_scales)
        return None
    return path, scale


def read_spot_table(path: Path, section: str) -> pd.DataFrame:
    """Spot table indexed by ``"{x}x{y}"`` with ``array_x, array_y, pixel_x, pixel_y``."""
    if not path.is_file():
        raise SectionDataError(path, section, "spot table does not exist")
    table = _read_tsv(path, section, index_col=None)
    _require_columns(table, SPOT_COLUMNS, path, section)
    coords = _numeric(table, SPOT_COLUMNS, path, section)
    spots = pd.DataFrame(
        {
            "array_x": np.round(coords["x"]).astype(np.int64),
            "array_y": np.round(coords["y"]).astype(np.int64),
            "pixel_x": coords["pixel_x"].astype(np.float64),
            "pixel_y": coords["pixel_y"].astype(np.float64),
        }
    )
    spots.index = pd.Index(spots["array_x"].astype(str) + "x" + spots["array_y"].astype(str), name="spot_id")
    return spots


def read_labels(path: Path, section: str) -> pd.Series | None:
    """Pathologist labels indexed by spot id; rows without coordinates are dropped (logged)."""
    if not path.is_file():
        return None
    table = _read_tsv(path, section, index_col=None)
    _require_columns(table, LABEL_COLUMNS, path, section)
    no_coords = table["x"].isna() | table["y"].isna()
    if no_coords.any():
        logger.info(
            "Section %s: %d label row(s) of %s have no coordinates and are dropped", section, int(no_coords.sum()), path
        )
        table = table.loc[~no_coords]
    coords = _numeric(table, ("x", "y"), path, section)
    ids = np.round(coords["x"]).astype(np.int64).astype(str) + "x" + np.round(coords["y"]).astype(np.int64).astype(str)
    labels = pd.Series(table["label"].astype(str).to_numpy(), index=pd.Index(ids, name="spot_id"), name="label")
    dup = labels.index.duplicated()
    if dup.any():
        raise SectionDataError(path, section, f"duplicate labelled spots: {list(labels.index[dup][:5])}")
    return labels


def read_count_table(path: Path, section: str) -> pd.DataFrame:
    """A spots x genes count table with spot ids as index, validated."""
    counts = _read_tsv(path, section, index_col=0)
    counts.index = counts.index.astype(str)
    return validate_counts(counts, path, section)


def read_section(root: str | Path, section: str, source: str = SOURCE, patient: str | None = None) -> ad.AnnData:
    """Read one her2st-layout section into the project schema (patient: the section's first letter)."""
    patient = patient or patient_of(section)
    folder = data_dir(root)
    counts_path = count_file(root, section)
    counts = read_count_table(counts_path, section)
    spots_path = folder / "ST-spotfiles" / f"{section}_selection.tsv"
    counts, spots = join_counts_and_spots(
        counts, read_spot_table(spots_path, section), counts_path, spots_path, section
    )
    labels = read_labels(folder / "ST-pat" / "lbl" / f"{section}_labeled_coordinates.tsv", section)
    image = describe_section_image(image_path(root, section, patient), spots, section, folder / "ST-imgs", spots_path)
    return build_section(counts, spots, section=section, patient=patient, source=source, image=image, labels=labels)


def _read_tsv(path: Path, section: str, index_col: int | None) -> pd.DataFrame:
    try:
        return pd.read_csv(path, sep="\t", index_col=index_col)
    except (OSError, EOFError, pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
        raise SectionDataError(path, section, f"cannot be parsed as a TSV table ({error})") from error


def _require_columns(table: pd.DataFrame, columns, path: Path, section: str) -> None:
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise SectionDataError(path, section, f"missing column(s) {missing}; found {list(table.columns)}")


def _numeric(table: pd.DataFrame, columns, path: Path, section: str) -> pd.DataFrame:
    out = {}
    for column in columns:
        values = pd.to_numeric(table[column], errors="coerce")
        bad = values.isna()
        if bad.any():
            raise SectionDataError(
                path,
                section,
                f"column {column!r} has {int(bad.sum())} missing or non-numeric value(s), first at row {int(np.argmax(bad.to_numpy()))}",
            )
        out[column] = values.to_numpy()
    return pd.DataFrame(out)
