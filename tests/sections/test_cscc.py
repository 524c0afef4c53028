"""cSCC (GSE144240) reader on files written by the test in GEO's layout."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from thitogene_kedro.sections import cscc
from thitogene_kedro.sections.schema import SectionDataError


def write_gse144240_section(folder, gsm: str, section: str, n_cols: int = 6, n_rows: int = 4, image: bool = True):
    """A staggered legacy-ST section: every array spot has counts, only some are selected."""
    rng = np.random.default_rng(0)
    ids, rows = [], []
    for y in range(1, n_rows + 1):
        for x in range(1, n_cols + 1):
            ids.append(f"{x}x{y}")
            # staggered: odd rows shifted by half a pitch, pitch 150 px x 130 px
            rows.append(
                {
                    "x": x,
                    "y": y,
                    "new_x": x + 0.03,
                    "new_y": y,
                    "pixel_x": 100 + 150 * x + 75 * (y % 2),
                    "pixel_y": 100 + 130 * y,
                    "selected": 1,
                }
            )
    counts = pd.DataFrame(rng.poisson(3, size=(len(ids), 4)), index=ids, columns=["KRT14", "KRT5", "COL1A1", "MT-CO1"])
    counts.to_csv(folder / f"{gsm}_{section}_stdata.tsv.gz", sep="\t")
    selected = pd.DataFrame(rows).iloc[: len(rows) - n_cols]  # the last array row lies off tissue
    selected.to_csv(folder / f"{gsm}_spot_data-selection-{section}.tsv.gz", sep="\t", index=False)
    if image:
        Image.fromarray(np.full((800, 1400, 3), 230, dtype=np.uint8)).save(folder / f"{gsm}_{section}.jpg")
    return counts, selected


def test_reads_gse144240_layout_with_inner_join(tmp_path, caplog):
    counts, selected = write_gse144240_section(tmp_path, "GSM4284316", "P2_ST_rep1")
    write_gse144240_section(tmp_path, "GSM4284317", "P10_ST_rep2", image=False)
    assert cscc.section_ids(tmp_path) == ["P10_ST_rep2", "P2_ST_rep1"]
    with caplog.at_level("INFO"):
        adata = cscc.read_section(tmp_path, "P2_ST_rep1")
    assert adata.n_obs == len(selected) < len(counts)
    assert "not in the spot table" in caplog.text
    assert (adata.obs["patient"] == "P2").all()
    assert adata.uns["image"]["present"] and adata.uns["source"] == "cscc"
    # staggered pixel positions are kept as given: no her2st pitch is assumed
    np.testing.assert_allclose(adata.obs["pixel_x"].iloc[:2], [100 + 150 + 75, 100 + 300 + 75])
    assert not cscc.read_section(tmp_path, "P10_ST_rep2").uns["image"]["present"]


def test_missing_spot_file_is_named(tmp_path):
    write_gse144240_section(tmp_path, "GSM1", "P5_ST_rep3")
    next(tmp_path.glob("*spot_data*")).unlink()
    with pytest.raises(SectionDataError, match="section P5_ST_rep3: no spot selection file found"):
        cscc.read_section(tmp_path, "P5_ST_rep3")


def test_negative_counts_are_refused(tmp_path):
    write_gse144240_section(tmp_path, "GSM1", "P9_ST_rep1")
    path = next(tmp_path.glob("*stdata*"))
    table = pd.read_csv(path, sep="\t", index_col=0)
    table.iloc[2, 1] = -4
    table.to_csv(path, sep="\t")
    with pytest.raises(SectionDataError, match="negative count -4"):
        cscc.read_section(tmp_path, "P9_ST_rep1")
