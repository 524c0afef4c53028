"""her2st reader: schema, joins, labels, images, and every kind of bad input."""

from __future__ import annotations

import gzip
import shutil

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from scipy import sparse

from tests.conftest import C3_WINDOW, toy_section_tables, write_her2st_section
from thitogene_kedro.sections import her2st
from thitogene_kedro.sections.schema import SectionDataError


def test_reads_section_into_schema(toy_her2st):
    adata = her2st.read_section(toy_her2st, "A1")
    counts, spots, _ = toy_section_tables()
    assert adata.shape == counts.shape
    assert sparse.issparse(adata.X) and np.issubdtype(adata.X.dtype, np.integer)
    np.testing.assert_array_equal(adata.X.toarray(), counts.to_numpy())
    assert list(adata.obs_names) == list(counts.index)
    assert {"section", "patient", "array_x", "array_y", "pixel_x", "pixel_y", "label"} <= set(adata.obs)
    assert (adata.obs["section"] == "A1").all() and (adata.obs["patient"] == "A").all()
    np.testing.assert_allclose(adata.obsm["spatial"], spots[["pixel_x", "pixel_y"]].to_numpy())
    assert adata.uns["image"]["present"] and adata.uns["image"]["width"] == 200
    assert adata.uns["image"]["path"].endswith("HE.png")
    assert adata.uns["source"] == "her2st"


def test_section_without_image_is_counts_only(toy_her2st):
    adata = her2st.read_section(toy_her2st, "A2")
    assert adata.uns["image"] == {"path": "", "present": False, "width": 0, "height": 0}
    assert her2st.section_ids(toy_her2st) == ["A1", "A2"]


def test_spot_table_rows_without_counts_are_dropped_and_logged(tmp_path, caplog):
    counts, spots, image = toy_section_tables()
    write_her2st_section(tmp_path, "B1", counts.iloc[:-2], spots, image)
    with caplog.at_level("INFO"):
        adata = her2st.read_section(tmp_path, "B1")
    assert adata.n_obs == len(counts) - 2
    assert "have no counts and are dropped" in caplog.text


def test_labels_join_by_rounded_coordinates_and_na_rows_are_dropped(tmp_path, caplog):
    counts, spots, image = toy_section_tables()
    labels = pd.DataFrame(
        {
            "Row.names": ["a", "b", "c"],
            "x": [1.004, 2.02, np.nan],
            "y": [0.98, 1.0, 3.0],
            "pixel_x": [1, 2, 3],
            "pixel_y": [1, 2, 3],
            "label": ["invasive cancer", "adipose tissue", "undetermined"],
        }
    )
    write_her2st_section(tmp_path, "B1", counts, spots, image, labels=labels)
    with caplog.at_level("INFO"):
        adata = her2st.read_section(tmp_path, "B1")
    assert adata.obs.loc["1x1", "label"] == "invasive cancer"
    assert adata.obs.loc["2x1", "label"] == "adipose tissue"
    assert adata.obs["label"].isna().sum() == adata.n_obs - 2
    assert "have no coordinates and are dropped" in caplog.text


@pytest.mark.parametrize(
    ("corrupt", "message"),
    [
        (lambda c, s: (c.rename(index={"1x1": "99x99"}), s), "do not join the spot table"),
        (lambda c, s: (pd.concat([c, c.iloc[:1]]), s), "duplicate spot ids in the count matrix"),
        (lambda c, s: (c, pd.concat([s, s.iloc[:1]])), "duplicate spots in the spot table"),
        (lambda c, s: (c.assign(G0=c["G0"] * -1 - 1), s), "negative count"),
        (lambda c, s: (c.assign(G1=c["G1"].astype(object).where(c.index != "2x2", "abc")), s), "non-numeric counts"),
        (lambda c, s: (c.assign(G2=c["G2"] + 0.5), s), "non-integer count"),
        (lambda c, s: (c, s.assign(pixel_x=s["pixel_x"] * 100)), "outside the 200x200 image"),
        (lambda c, s: (c, s.drop(columns=["pixel_y"])), "missing column(s) ['pixel_y']"),
    ],
)
def test_bad_input_names_file_section_and_problem(tmp_path, corrupt, message):
    counts, spots, image = toy_section_tables()
    counts, spots = corrupt(counts, spots)
    write_her2st_section(tmp_path, "C7", counts, spots, image)
    with pytest.raises(SectionDataError) as error:
        her2st.read_section(tmp_path, "C7")
    assert message in str(error.value)
    assert "section C7" in str(error.value)
    assert error.value.file is not None and "C7" in error.value.file


def test_missing_files_are_named(tmp_path):
    with pytest.raises(SectionDataError, match="her2st count folder not found"):
        her2st.section_ids(tmp_path)
    counts, spots, image = toy_section_tables()
    write_her2st_section(tmp_path, "A1", counts, spots, image)
    with pytest.raises(SectionDataError, match=r"A9\.tsv\.gz.*count file does not exist"):
        her2st.read_section(tmp_path, "A9")
    (tmp_path / "data" / "ST-spotfiles" / "A1_selection.tsv").unlink()
    with pytest.raises(SectionDataError, match=r"A1_selection\.tsv: section A1: spot table does not exist"):
        her2st.read_section(tmp_path, "A1")


def test_truncated_and_corrupt_images_are_refused(tmp_path):
    counts, spots, image = toy_section_tables()
    write_her2st_section(tmp_path, "A1", counts, spots, image, image_name="HE.jpg")
    path = next((tmp_path / "data" / "ST-imgs" / "A" / "A1").iterdir())
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(SectionDataError, match="truncated"):
        her2st.read_section(tmp_path, "A1")
    path.write_bytes(b"this is not an image at all")
    with pytest.raises(SectionDataError, match="not a readable image"):
        her2st.read_section(tmp_path, "A1")


def test_plain_tsv_counts_are_accepted(tmp_path):
    counts, spots, image = toy_section_tables()
    write_her2st_section(tmp_path, "A1", counts, spots, image)
    gz = tmp_path / "data" / "ST-cnts" / "A1.tsv.gz"
    with gzip.open(gz, "rb") as src, (gz.parent / "A1.tsv").open("wb") as dst:
        shutil.copyfileobj(src, dst)
    gz.unlink()
    assert her2st.read_section(tmp_path, "A1").n_obs == len(counts)


@pytest.mark.skipif(not C3_WINDOW.is_dir(), reason="real C3 fixture (../shared/data) not present")
def test_real_c3_window_fixture(tmp_path):
    """The 62-spot real crop of C3, laid out as a her2st clone."""
    counts = pd.read_csv(C3_WINDOW / "C3_window_785genes.tsv.gz", sep="\t", index_col=0)
    spots = pd.read_csv(C3_WINDOW / "C3_window_selection.tsv", sep="\t")
    image = np.asarray(Image.open(C3_WINDOW / "C3_window.jpg").convert("RGB"))
    write_her2st_section(tmp_path, "C3", counts, spots, image, image_name="C3_window.png")
    adata = her2st.read_section(tmp_path, "C3")
    assert adata.n_obs == 62 and adata.n_vars == 785
    assert adata.X.sum() == counts.to_numpy().sum()


def test_a_spot_outside_the_image_is_blamed_on_the_spot_table_that_places_it(tmp_path):
    counts, spots, image = toy_section_tables()
    spots.loc[1, "pixel_x"] = 5000.0
    spot = f"{spots.loc[1, 'x']}x{spots.loc[1, 'y']}"
    write_her2st_section(tmp_path, "C7", counts, spots, image)
    with pytest.raises(SectionDataError) as error:
        her2st.read_section(tmp_path, "C7")
    assert error.value.file == str(tmp_path / "data" / "ST-spotfiles" / "C7_selection.tsv")
    assert "1 spot centre(s) lie outside the 200x200 image HE.jpg" in error.value.problem
    assert f"{spot} at (5000, " in error.value.problem and "correct their pixel coordinates" in error.value.problem
