"""Reader for 10x Visium Space Ranger output, through scanpy's own Visium reader.

``<root>`` holds one folder per section; each is a Space Ranger ``outs/`` folder (or contains
one) with ``filtered_feature_bc_matrix.h5``, ``spatial/tissue_positions*.csv`` and
``spatial/scalefactors_json.json``. The full-resolution H&E image that went into Space Ranger is
not part of ``outs/``: it is found in the section folder by ``fullres_image_glob`` (any image file
by default); without it, ``spatial/tissue_hires_image.png`` draws the tissue. Spots keep their barcodes as ids; ``array_col`` becomes ``array_x`` and
``array_row`` ``array_y`` (Visium's hexagonal grid: columns step by 2 within a row).
"""

from __future__ import annotations

import json
import logging
import warnings
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
from scipy import sparse

from thitogene_kedro.sections.images import IMAGE_SUFFIXES, describe_section_image
from thitogene_kedro.sections.schema import SectionDataError, build_section, validate_counts

logger = logging.getLogger(__name__)

SOURCE = "visium"
MATRIX_FILE = "filtered_feature_bc_matrix.h5"
VISIUM_SPOT_DIAMETER_UM = 55.0


def _outs(root: str | Path, section: str) -> Path:
    folder = Path(root) / section
    outs = folder / "outs" if (folder / "outs").is_dir() else folder
    if not (outs / MATRIX_FILE).is_file():
        raise SectionDataError(outs / MATRIX_FILE, section, "Space Ranger filtered matrix does not exist")
    return outs


def section_ids(root: str | Path) -> list[str]:
    """Section folders that hold a Space Ranger output, sorted."""
    root = Path(root)
    if not root.is_dir():
        raise SectionDataError(root, None, "Visium folder does not exist")
    return sorted(p.name for p in root.iterdir() if (p / MATRIX_FILE).is_file() or (p / "outs" / MATRIX_FILE).is_file())


def image_path(root: str | Path, section: str, fullres_image_glob: str = "*") -> Path | None:
    """The full-resolution image in the section folder, or ``None``."""
    folder = Path(root) / section
    matches = sorted(p for p in folder.glob(fullres_image_glob) if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if len(matches) > 1:
        logger.warning("Several full-resolution images in %s; using %s", folder, matches[0].name)
    return matches[0] if matches else None


def preview(root: str | Path, section: str, fullres_image_glob: str = "*") -> tuple[Path, float] | None:
    """Space Ranger's ``spatial/tissue_hires_image.png`` and its ``tissue_hires_scalef``, or ``None``."""
    del fullres_image_glob  # the preview's place is fixed by Space Ranger
    spatial = _outs(root, section) / "spatial"
    image, factors = spatial / "tissue_hires_image.png", spatial / "scalefactors_json.json"
    if not (image.is_file() and factors.is_file()):
        return None
    scale = json.loads(factors.read_text()).get("tissue_hires_scalef")
    if scale is None:
        logger.info("Section %s: %s has no tissue_hires_scalef; hires image unused", section, factors)
        return None
    return image, float(scale)


def _positions_file(outs: Path) -> Path:
    """Space Ranger's spot position table (``tissue_positions.csv``, or the older ``_list`` form)."""
    spatial = outs / "spatial"
    found = [spatial / n for n in ("tissue_positions.csv", "tissue_positions_list.csv") if (spatial / n).is_file()]
    return found[0] if found else spatial


def read_section(
    root: str | Path, section: str, source: str = SOURCE, fullres_image_glob: str = "*", patient: str | None = None
) -> ad.AnnData:
    """Read one Space Ranger section into the project schema."""
    import scanpy as sc  # noqa: PLC0415 - ~170 MiB and ~2 s, needed only for Visium input

    outs = _outs(root, section)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            visium = sc.read_visium(outs, count_file=MATRIX_FILE, load_images=True)
    except (OSError, KeyError, ValueError) as error:
        raise SectionDataError(outs, section, f"Space Ranger output cannot be read ({error})") from error
    unplaced = visium.obs["array_row"].isna() | visium.obs["array_col"].isna()
    if unplaced.any():
        raise SectionDataError(
            outs / "spatial",
            section,
            f"{int(unplaced.sum())} matrix barcodes have no row in tissue_positions: {list(visium.obs_names[unplaced][:5])}",
        )
    if not visium.var_names.is_unique:
        logger.info(
            "Section %s: %d duplicate gene symbols made unique (scanpy var_names_make_unique)",
            section,
            int(visium.var_names.duplicated().sum()),
        )
        visium.var_names_make_unique()
    matrix = visium.X.toarray() if sparse.issparse(visium.X) else np.asarray(visium.X)
    counts = validate_counts(
        pd.DataFrame(matrix, index=visium.obs_names, columns=visium.var_names), outs / MATRIX_FILE, section
    )
    pixels = np.asarray(visium.obsm["spatial"], dtype=np.float64)
    spots = pd.DataFrame(
        {
            "array_x": visium.obs["array_col"].to_numpy(dtype=np.int64),
            "array_y": visium.obs["array_row"].to_numpy(dtype=np.int64),
            "pixel_x": pixels[:, 0],
            "pixel_y": pixels[:, 1],
        },
        index=visium.obs_names,
    )
    image = describe_section_image(
        image_path(root, section, fullres_image_glob), spots, section, Path(root) / section, _positions_file(outs)
    )
    adata = build_section(counts, spots, section=section, patient=patient or section, source=source, image=image)
    scalefactors = next(iter(visium.uns.get("spatial", {}).values()), {}).get("scalefactors", {})
    if "spot_diameter_fullres" in scalefactors:  # Space Ranger's own value: a Visium spot is 55 µm across
        adata.uns["spot"] = {"diameter_fullres": float(scalefactors["spot_diameter_fullres"]),
                             "diameter_um": VISIUM_SPOT_DIAMETER_UM, "from": "spatial/scalefactors_json.json"}  # fmt: skip
    return adata
