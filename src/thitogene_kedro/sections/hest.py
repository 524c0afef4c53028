"""Reader for HEST-1k samples (Jaume et al., NeurIPS 2024) in their published layout, without the
``hest`` package::

    <root>/st/<id>.h5ad          raw counts; obsm['spatial'] full-resolution spot centres (x = column),
                                 obs array_row, array_col, in_tissue, pxl_col_in_fullres, pxl_row_in_fullres
    <root>/wsis/<id>.tif         pyramidal (Big)TIFF, read tile by tile
    <root>/metadata/<id>.json    pixel_size_um_estimated, patient, st_technology, spot_diameter, ...
    <root>/patches/<id>.h5       img (N x 224 x 224 x 3 uint8 at 0.5 µm/px), coords (top-left corners,
                                 level-0 pixels), barcode (N x 1): spots under tissue only

A sample is a section; its patient is the metadata's ``patient`` (leave-one-patient-out follows
it). The µm per pixel is ``pixel_size_um_estimated``, never the embedded value (wrong in some
samples), and the spot diameter is the metadata's ``spot_diameter`` in µm, so the spatial layout
and the training µm/px follow the sample's own geometry. Spots with ``in_tissue == 0`` are dropped
with a logged count. HEST's ST barcodes (``"{x:03}x{y:03}"``) stay the spot ids: they join the
patches.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import anndata as ad
import numpy as np
import pandas as pd
from scipy import sparse

from thitogene_kedro.sections.schema import SectionDataError, build_section, check_spots_inside_image, validate_counts

logger = logging.getLogger(__name__)

SOURCE = "hest"
WSI_SUFFIXES = (".tif", ".tiff")
# spot diameters (µm) by technology, where a metadata file lacks ``spot_diameter``
TECHNOLOGY_SPOT_DIAMETER_UM = {"spatial transcriptomics": 100.0, "visium": 55.0}
HEST_PATCH_MPP = 0.5


def _file(root: str | Path, folder: str, section: str, suffix: str) -> Path:
    return Path(root) / folder / f"{section}{suffix}"


def section_ids(root: str | Path) -> list[str]:
    """Samples with a count file (``st/<id>.h5ad``), sorted."""
    folder = Path(root) / "st"
    if not folder.is_dir():
        raise SectionDataError(folder, None, "HEST st/ folder does not exist; point the path at a HEST-1k download")
    return sorted(p.stem for p in folder.glob("*.h5ad"))


def read_metadata(root: str | Path, section: str) -> dict[str, Any]:
    """The sample's ``metadata/<id>.json``.

    Raises:
        SectionDataError: missing, not JSON, or without a usable ``pixel_size_um_estimated``.
    """
    path = _file(root, "metadata", section, ".json")
    if not path.is_file():
        raise SectionDataError(
            path, section, "HEST metadata file does not exist; download metadata/ with st/ and wsis/"
        )
    try:
        metadata = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise SectionDataError(path, section, f"HEST metadata is not valid JSON ({error})") from error
    mpp = metadata.get("pixel_size_um_estimated")
    if not isinstance(mpp, int | float) or not mpp > 0:
        raise SectionDataError(
            path, section, f"pixel_size_um_estimated is {mpp!r}, not a positive number of µm per pixel; "
            "take the value from HEST's metadata release (the embedded pixel size is not used)",
        )  # fmt: skip
    return metadata


def patient_of(root: str | Path, section: str) -> str:
    """The sample's patient (metadata ``patient``; the sample itself where that is empty)."""
    patient = read_metadata(root, section).get("patient")
    return str(patient) if patient not in (None, "", "nan") else section


def image_path(root: str | Path, section: str) -> Path | None:
    """The sample's whole-slide image ``wsis/<id>.tif``, or ``None``."""
    found = [p for p in (_file(root, "wsis", section, s) for s in WSI_SUFFIXES) if p.is_file()]
    return found[0] if found else None


def spot_diameter_um(metadata: dict[str, Any], path: Path, section: str) -> float:
    """The metadata's ``spot_diameter`` (µm), else the technology's (ST 100, Visium 55)."""
    value = metadata.get("spot_diameter")
    if isinstance(value, int | float) and value > 0:
        return float(value)
    technology = str(metadata.get("st_technology", "")).lower()
    if technology in TECHNOLOGY_SPOT_DIAMETER_UM:
        return TECHNOLOGY_SPOT_DIAMETER_UM[technology]
    raise SectionDataError(path, section, f"no spot_diameter and st_technology {technology!r} gives none; add "
                           "spot_diameter (µm) to the metadata")  # fmt: skip


def _read_counts(path: Path, section: str) -> ad.AnnData:
    if not path.is_file():
        raise SectionDataError(path, section, "HEST count file does not exist")
    try:
        st = ad.read_h5ad(path)
    except (OSError, KeyError, ValueError) as error:
        raise SectionDataError(path, section, f"not a readable h5ad ({error})") from error
    missing = [c for c in ("array_row", "array_col") if c not in st.obs.columns]
    if missing:
        raise SectionDataError(path, section, f"obs lacks {missing}; a HEST st/ file carries array_row and array_col")
    if "spatial" not in st.obsm:
        raise SectionDataError(path, section, "obsm['spatial'] (full-resolution spot centres) is missing")
    if "in_tissue" in st.obs.columns:
        outside = st.obs["in_tissue"].to_numpy() == 0
        if outside.any():
            logger.info("Section %s: %d spot(s) with in_tissue == 0 dropped", section, int(outside.sum()))
            st = st[~outside].copy()
    if not st.var_names.is_unique:
        logger.info("Section %s: %d duplicate gene symbols made unique", section, int(st.var_names.duplicated().sum()))
        st.var_names_make_unique()
    return st


def read_section(root: str | Path, section: str, source: str = SOURCE, patient: str | None = None) -> ad.AnnData:
    """Read one HEST sample into the project schema."""
    from thitogene_kedro.sections.tiff_slide import open_slide  # noqa: PLC0415 - tifffile only where slides are read

    metadata_path = _file(root, "metadata", section, ".json")
    metadata = read_metadata(root, section)
    path = _file(root, "st", section, ".h5ad")
    st = _read_counts(path, section)
    matrix = st.X.toarray() if sparse.issparse(st.X) else np.asarray(st.X)
    counts = validate_counts(pd.DataFrame(matrix, index=st.obs_names, columns=st.var_names), path, section)
    pixels = np.asarray(st.obsm["spatial"], dtype=np.float64)
    spots = pd.DataFrame(
        {"array_x": st.obs["array_col"].to_numpy(dtype=np.int64), "array_y": st.obs["array_row"].to_numpy(dtype=np.int64),
         "pixel_x": pixels[:, 0], "pixel_y": pixels[:, 1]},
        index=st.obs_names,
    )  # fmt: skip
    image = None
    wsi = image_path(root, section)
    if wsi is None:
        logger.info("Section %s has no whole-slide image in %s; no patches (counts only)", section, Path(root) / "wsis")
    else:
        with open_slide(wsi, section) as slide:
            width, height = slide.width, slide.height
        check_spots_inside_image(pixels, spots.index, width, height, wsi, section, spots_file=path)
        image = {"path": wsi, "width": width, "height": height}
    adata = build_section(
        counts, spots, section=section, patient=patient or patient_of(root, section), source=source, image=image
    )
    mpp, diameter_um = float(metadata["pixel_size_um_estimated"]), spot_diameter_um(metadata, metadata_path, section)
    adata.uns["spot"] = {"diameter_fullres": diameter_um / mpp, "diameter_um": diameter_um,
                         "from": f"{metadata_path.name}: spot_diameter and pixel_size_um_estimated"}  # fmt: skip
    keys = ("id", "dataset_title", "organ", "species", "st_technology", "license", "patient", "pixel_size_um_estimated")
    adata.uns["hest"] = {k: metadata[k] for k in keys if metadata.get(k) not in (None, "")}
    return adata


class HestPatches:
    """HEST's own patches of a sample (``patches/<id>.h5``), read batch by batch while open.

    ``with HestPatches(root, section) as stored``: ``stored.spot_ids`` (the barcodes),
    ``stored.corners`` (top-left, level-0 pixels), ``stored.source_px`` (level-0 pixels a patch
    covers), ``stored.patch_px`` (its stored size, 224 at ``HEST_PATCH_MPP``) and
    ``stored.read(rows)`` (those rows' pixels, in the order asked).

    Raises:
        SectionDataError: a missing file or dataset.
    """

    def __init__(self, root: str | Path, section: str) -> None:
        self.root, self.section = Path(root), section
        self.path = _file(root, "patches", section, ".h5")
        self._handle: Any = None

    def __enter__(self) -> HestPatches:
        import h5py  # noqa: PLC0415 - only for HEST patches

        if not self.path.is_file():
            raise SectionDataError(self.path, self.section, "HEST patch file does not exist")
        self._handle = handle = h5py.File(self.path, "r")
        missing = [k for k in ("img", "coords", "barcode") if k not in handle]
        if missing:
            handle.close()
            raise SectionDataError(
                self.path, self.section, f"datasets {missing} are missing (expected img, coords, barcode)"
            )
        self.corners = np.asarray(handle["coords"][:], dtype=np.float64)
        self.spot_ids = np.asarray(
            [b.decode() if isinstance(b, bytes) else str(b) for b in handle["barcode"][:].ravel()]
        )
        self.patch_px = int(handle["img"].shape[1])
        source_px = handle["img"].attrs.get("patch_size_src")
        if source_px is None:  # older files: the source size from the sample's resolution (224 px at 0.5 µm/px)
            source_px = (
                self.patch_px
                * HEST_PATCH_MPP
                / float(read_metadata(self.root, self.section)["pixel_size_um_estimated"])
            )
        self.source_px = float(source_px)
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._handle.close()

    def read(self, rows: np.ndarray) -> np.ndarray:
        """``(len(rows), patch_px, patch_px, 3)`` uint8 pixels of ``rows`` (distinct), in that order."""
        rows = np.asarray(rows, dtype=np.int64)
        order = np.argsort(rows)
        pixels = np.empty((len(rows), *self._handle["img"].shape[1:]), dtype=np.uint8)
        pixels[order] = self._handle["img"][rows[order]]  # h5py reads increasing indices
        return pixels

    def rows_of(self, spot_ids: pd.Index | np.ndarray) -> np.ndarray:
        """The file's row of each of ``spot_ids``, -1 where it has no patch."""
        row = {spot: i for i, spot in enumerate(self.spot_ids)}
        return np.asarray([row.get(str(spot), -1) for spot in spot_ids], dtype=np.int64)


def read_patches(root: str | Path, section: str, spot_ids: pd.Index | None = None) -> dict[str, np.ndarray]:
    """HEST's own patches of a sample, all at once: ``patches`` (N x 224 x 224 x 3 uint8, 0.5 µm/px),
    their spot ``centres`` in level-0 pixels (the file stores top-left corners) and ``spot_ids``.

    Raises:
        SectionDataError: a missing file or dataset, or barcodes that are not spots of ``spot_ids``.
    """
    with HestPatches(root, section) as stored:
        if spot_ids is not None:
            unknown = stored.spot_ids[~np.isin(stored.spot_ids, np.asarray(spot_ids).astype(str))]
            if len(unknown):
                raise SectionDataError(stored.path, section, f"{len(unknown)} patch barcode(s) are not spots of "
                                       f"st/{section}.h5ad: {list(unknown[:5])}; the patch and count files come from "
                                       "different releases")  # fmt: skip
        images = stored.read(np.arange(len(stored.spot_ids)))
        return {"patches": images, "centres": stored.corners + stored.source_px / 2, "spot_ids": stored.spot_ids}
