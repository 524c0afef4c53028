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


def read_patches(root: str | Path, section: str, spot_ids: pd.Index | None = None) -> dict[str, np.ndarray]:
    """HEST's own patches of a sample: ``patches`` (N x 224 x 224 x 3 uint8, 0.5 µm/px), their spot
    ``centres`` in level-0 pixels (the file stores top-left corners) and ``spot_ids``.

    Raises:
        SectionDataError: a missing file or dataset, or barcodes that are not spots of ``spot_ids``.
    """
    import h5py  # noqa: PLC0415 - only for HEST patches

    path = _file(root, "patches", section, ".h5")
    if not path.is_file():
        raise SectionDataError(path, section, "HEST patch file does not exist")
    with h5py.File(path, "r") as handle:
        missing = [k for k in ("img", "coords", "barcode") if k not in handle]
        if missing:
            raise SectionDataError(path, section, f"datasets {missing} are missing (expected img, coords, barcode)")
        images, corners = handle["img"][:], np.asarray(handle["coords"][:], dtype=np.float64)
        barcodes = np.asarray([b.decode() if isinstance(b, bytes) else str(b) for b in handle["barcode"][:].ravel()])
        source_px = handle["img"].attrs.get("patch_size_src")
    if source_px is None:  # older files: the source size from the sample's resolution (224 px at 0.5 µm/px)
        source_px = images.shape[1] * HEST_PATCH_MPP / float(read_metadata(root, section)["pixel_size_um_estimated"])
    if spot_ids is not None:
        unknown = barcodes[~np.isin(barcodes, np.asarray(spot_ids).astype(str))]
        if len(unknown):
            raise SectionDataError(path, section, f"{len(unknown)} patch barcode(s) are not spots of st/{section}.h5ad: "
                                   f"{list(unknown[:5])}; the patch and count files come from different releases")  # fmt: skip
    return {"patches": images, "centres": corners + float(source_px) / 2, "spot_ids": barcodes}
