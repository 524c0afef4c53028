"""The one in-memory form of a tissue section, shared by every data source.

A section is an :class:`anndata.AnnData` with

* ``X``: raw counts, integers (``scipy.sparse.csr_matrix`` of ``int32``), spots x genes;
* ``obs`` indexed by spot id, with columns ``section``, ``patient``, ``array_x``, ``array_y``
  (integer array coordinates), ``pixel_x``, ``pixel_y`` (full-resolution pixels, x = column,
  y = row) and ``label`` (pathologist annotation, missing where there is none);
* ``obsm['spatial']`` = ``[pixel_x, pixel_y]`` (the scanpy/squidpy convention);
* ``uns['section']``, ``uns['patient']``, ``uns['source']`` and ``uns['image']`` =
  ``{'path', 'present', 'width', 'height'}`` describing the section's H&E image.
"""

from __future__ import annotations

import logging
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
from scipy import sparse

from thitogene_kedro.errors import ProjectError

logger = logging.getLogger(__name__)

OBS_COLUMNS = ("section", "patient", "array_x", "array_y", "pixel_x", "pixel_y", "label")
INT32_MAX = np.iinfo(np.int32).max


class SectionDataError(ProjectError):
    """Bad input data: the message names the file, the section and what is wrong."""

    def __init__(self, file: str | Path | None, section: str | None, problem: str):
        self.file = str(file) if file is not None else None
        self.section = section
        self.problem = problem
        where = []
        if self.file:
            where.append(self.file)
        if section:
            where.append(f"section {section}")
        super().__init__(f"{': '.join(where)}: {problem}" if where else problem)


def validate_counts(counts: pd.DataFrame, file: str | Path, section: str) -> pd.DataFrame:
    """Check a spots x genes count table and return it as int64.

    Raises:
        SectionDataError: empty table, duplicate spot ids or gene names, non-numeric,
            non-integer, negative or missing counts.
    """
    if counts.shape[0] == 0 or counts.shape[1] == 0:
        raise SectionDataError(file, section, f"count matrix is empty (shape {counts.shape})")
    dup_spots = counts.index[counts.index.duplicated()].unique()
    if len(dup_spots):
        raise SectionDataError(file, section, f"duplicate spot ids in the count matrix: {_preview(dup_spots)}")
    dup_genes = counts.columns[counts.columns.duplicated()].unique()
    if len(dup_genes):
        raise SectionDataError(file, section, f"duplicate gene names in the count matrix: {_preview(dup_genes)}")
    non_numeric = [c for c, dtype in counts.dtypes.items() if not pd.api.types.is_numeric_dtype(dtype)]
    if non_numeric:
        column = non_numeric[0]
        coerced = pd.to_numeric(counts[column], errors="coerce")
        bad = counts.index[coerced.isna() & counts[column].notna()]
        raise SectionDataError(
            file,
            section,
            f"non-numeric counts in {len(non_numeric)} gene column(s), first {column!r} at spot(s) {_preview(bad)}",
        )
    values = counts.to_numpy(dtype=np.float64)
    if np.isnan(values).any():
        row, col = np.argwhere(np.isnan(values))[0]
        raise SectionDataError(
            file, section, f"missing count at spot {counts.index[row]!r}, gene {counts.columns[col]!r}"
        )
    if (values < 0).any():
        row, col = np.argwhere(values < 0)[0]
        raise SectionDataError(
            file,
            section,
            f"negative count {values[row, col]:g} at spot {counts.index[row]!r}, gene {counts.columns[col]!r}",
        )
    if (values != np.round(values)).any():
        row, col = np.argwhere(values != np.round(values))[0]
        raise SectionDataError(
            file,
            section,
            f"non-integer count {values[row, col]:g} at spot {counts.index[row]!r}, "
            f"gene {counts.columns[col]!r} (raw UMI counts are expected)",
        )
    if values.max() > INT32_MAX:
        raise SectionDataError(file, section, "count exceeds the int32 range")
    return counts.astype(np.int64)


def join_counts_and_spots(
    counts: pd.DataFrame,
    spots: pd.DataFrame,
    counts_file: str | Path,
    spots_file: str | Path,
    section: str,
    how: str = "left",
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Align counts and spot table; returns ``(counts, spots)`` in count-matrix order.

    ``how='left'`` (her2st, the reference): the count matrix defines the spots and every count spot
    must have coordinates. ``how='inner'`` (cSCC, the reference): count spots absent from the spot
    table (not under tissue) are dropped with a logged count. Either way spot-table rows without
    counts are dropped with a logged reason.

    Raises:
        SectionDataError: duplicate spot ids in the spot table, count spots missing from it
            (``left``), or no shared spot at all.
    """
    dup = spots.index[spots.index.duplicated()].unique()
    if len(dup):
        raise SectionDataError(spots_file, section, f"duplicate spots in the spot table: {_preview(dup)}")
    missing = counts.index.difference(spots.index)
    if how == "inner" and len(missing) < len(counts):
        if len(missing):
            logger.info(
                "Section %s: %d of %d count spots are not in the spot table %s (not under tissue) and are dropped",
                section,
                len(missing),
                len(counts),
                spots_file,
            )
        counts = counts.loc[counts.index.isin(spots.index)]
        missing = missing[:0]
    if len(missing):
        raise SectionDataError(
            counts_file,
            section,
            f"{len(missing)} of {len(counts)} count-matrix spot ids do not join the spot table "
            f"{spots_file}: {_preview(missing)}",
        )
    extra = spots.index.difference(counts.index)
    if len(extra):
        logger.info(
            "Section %s: %d spot(s) of %s have no counts and are dropped: %s",
            section,
            len(extra),
            spots_file,
            _preview(extra),
        )
    return counts, spots.loc[counts.index]


def check_spots_inside_image(  # noqa: PLR0913 - the positions and the two files they join
    pixel_xy: np.ndarray,
    spot_ids: pd.Index,
    width: int,
    height: int,
    image_file: str | Path,
    section: str,
    *,
    spots_file: str | Path | None = None,
) -> None:
    """Raise if any spot centre lies outside the image.

    The error names the spot table (where the positions are written; the image when it is not
    known), the image and the first offending spots with their positions.
    """
    outside = (pixel_xy[:, 0] < 0) | (pixel_xy[:, 1] < 0) | (pixel_xy[:, 0] >= width) | (pixel_xy[:, 1] >= height)
    if outside.any():
        shown = [
            f"{spot} at ({x:g}, {y:g})"
            for spot, (x, y) in zip(spot_ids[outside][:5], pixel_xy[outside][:5], strict=True)
        ]
        more = f" and {int(outside.sum()) - 5} more" if outside.sum() > 5 else ""
        raise SectionDataError(
            spots_file if spots_file is not None else image_file,
            section,
            f"{int(outside.sum())} spot centre(s) lie outside the {width}x{height} image {Path(image_file).name}: "
            f"{', '.join(shown)}{more}; correct their pixel coordinates in this table "
            "or pair the section with the image they were measured on",
        )


def build_section(  # noqa: PLR0913 - the section's facts, keyword-only
    counts: pd.DataFrame,
    spots: pd.DataFrame,
    *,
    section: str,
    patient: str,
    source: str,
    image: dict | None,
    labels: pd.Series | None = None,
) -> ad.AnnData:
    """Assemble a section in the project schema.

    Args:
        counts: validated spots x genes integer counts.
        spots: spot table aligned to ``counts`` with ``array_x``, ``array_y``, ``pixel_x``,
            ``pixel_y``.
        section: section id.
        patient: patient id.
        source: data source name (``her2st``, ``cscc``, ``visium``, ``synthetic``).
        image: ``{'path', 'width', 'height'}`` or ``None`` when the section has no image.
        labels: pathologist label per spot id (missing spots get no label).
    """
    obs = pd.DataFrame(index=pd.Index(counts.index.astype(str), name="spot_id"))
    obs["section"] = section
    obs["patient"] = patient
    obs["array_x"] = spots["array_x"].to_numpy(dtype=np.int64)
    obs["array_y"] = spots["array_y"].to_numpy(dtype=np.int64)
    obs["pixel_x"] = spots["pixel_x"].to_numpy(dtype=np.float64)
    obs["pixel_y"] = spots["pixel_y"].to_numpy(dtype=np.float64)
    label = labels.reindex(obs.index) if labels is not None else pd.Series(np.nan, index=obs.index)
    obs["label"] = pd.Categorical(label.astype("object").where(label.notna(), None))
    for column in ("section", "patient"):
        obs[column] = pd.Categorical(obs[column])
    var = pd.DataFrame(index=pd.Index(counts.columns.astype(str), name="gene"))
    matrix = sparse.csr_matrix(counts.to_numpy(dtype=np.int32))
    adata = ad.AnnData(X=matrix, obs=obs, var=var)
    adata.obsm["spatial"] = obs[["pixel_x", "pixel_y"]].to_numpy(dtype=np.float64)
    adata.uns["section"] = section
    adata.uns["patient"] = patient
    adata.uns["source"] = source
    if image is None:
        adata.uns["image"] = {"path": "", "present": False, "width": 0, "height": 0}
    else:
        adata.uns["image"] = {
            "path": str(image["path"]),
            "present": True,
            "width": int(image["width"]),
            "height": int(image["height"]),
        }
    return adata


def has_image(adata: ad.AnnData) -> bool:
    """Whether the section comes with a full-resolution H&E image."""
    return bool(adata.uns.get("image", {}).get("present", False))


def _preview(items, limit: int = 5) -> str:
    items = [str(i) for i in items]
    shown = ", ".join(items[:limit])
    return shown + (f", ... ({len(items)} in all)" if len(items) > limit else "")
