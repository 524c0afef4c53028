"""The preprocessing pipeline through a DataCatalog and Kedro's SequentialRunner."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from kedro.io import DataCatalog, MemoryDataset
from kedro.runner import SequentialRunner
from kedro_datasets.partitions import PartitionedDataset
from PIL import Image

from tests.conftest import C3_WINDOW, assert_scanpy_and_squidpy_draw_it_over_the_tissue, write_her2st_section
from thitogene_kedro.datasets import (
    AnnDataDataset,
    SectionImagesDataset,
    SectionPreviewsDataset,
    SpatialSectionsDataset,
)
from thitogene_kedro.pipelines.preprocessing import create_pipeline
from thitogene_kedro.pipelines.preprocessing.params import PreprocessingParams
from thitogene_kedro.processing.genes import GeneList


def test_pipeline_runs_through_catalog(toy_her2st, tmp_path, caplog):
    catalog = DataCatalog(
        {
            "raw_sections": SpatialSectionsDataset(source="her2st", path=str(toy_her2st)),
            "raw_images": SectionImagesDataset(source="her2st", path=str(toy_her2st)),
            "raw_previews": SectionPreviewsDataset(source="her2st", path=str(toy_her2st)),
            "gene_list": MemoryDataset(["G4", "G0", "G2"]),
            "run_provenance": MemoryDataset({}),
            "params:preprocessing": MemoryDataset(PreprocessingParams()),
            "preprocessed_sections": PartitionedDataset(
                path=str(tmp_path / "sections"), dataset=AnnDataDataset, filename_suffix=".h5ad", overwrite=True
            ),
        }
    )
    with caplog.at_level("INFO", logger="kedro.runner.sequential_runner"):  # WARNING in conf/logging.yml
        outputs = SequentialRunner().run(create_pipeline(), catalog)
    assert "Pipeline execution completed successfully" in caplog.text
    report = outputs["preprocessing_report"].load()
    assert report["section"].tolist() == ["A1", "A2"]
    assert report["n_genes"].tolist() == [3, 3]
    assert report["image_present"].tolist() == [True, False]
    sections = catalog["preprocessed_sections"].load()
    a1 = sections["A1"]()
    assert a1.var_names.tolist() == ["G4", "G0", "G2"]
    assert a1.X.dtype == np.float32 and not np.isnan(a1.X).any()


@pytest.mark.skipif(not C3_WINDOW.is_dir(), reason="real C3 fixture (../shared/data) not present")
def test_preprocessed_real_sections_open_in_scanpy_and_squidpy_over_their_tissue(tmp_path):
    """The real 62-spot C3 crop (with its image), the same spots with only a half-size tissue
    preview (C4) and with neither (C5), preprocessed through the catalog: the spatial layout, the
    true spot size and the provenance in uns."""
    counts = pd.read_csv(C3_WINDOW / "C3_window_785genes.tsv.gz", sep="\t", index_col=0)
    spots = pd.read_csv(C3_WINDOW / "C3_window_selection.tsv", sep="\t")
    image = np.asarray(Image.open(C3_WINDOW / "C3_window.jpg").convert("RGB"))
    write_her2st_section(tmp_path / "her2st", "C3", counts, spots, image, image_name="C3_window.png")
    write_her2st_section(tmp_path / "her2st", "C4", counts, spots)  # the same spots, only a preview
    write_her2st_section(tmp_path / "her2st", "C5", counts, spots)  # no image at all
    previews = tmp_path / "her2st" / "app" / "www" / "imgs"
    previews.mkdir(parents=True)
    half = Image.fromarray(image).resize((image.shape[1] // 2, image.shape[0] // 2))
    half.save(previews / "C4_HE_image_dark.png")
    half.save(previews / "C5_HE_image_dark.png")  # a preview whose scale the table lacks: unused, logged
    scales = tmp_path / "preview_scales.csv"
    pd.DataFrame({"section": ["C4"], "lowres_scale": [half.width / image.shape[1]]}).to_csv(scales, index=False)
    provenance = {"code": {"git_commit": "abc", "code_version": "0.1"}, "mlflow": {"run_id": "r1"}}
    catalog = DataCatalog(
        {
            "raw_sections": SpatialSectionsDataset(source="her2st", path=str(tmp_path / "her2st")),
            "raw_images": SectionImagesDataset(source="her2st", path=str(tmp_path / "her2st")),
            "raw_previews": SectionPreviewsDataset(
                source="her2st", path=str(tmp_path / "her2st"), options={"preview_scales": str(scales)}
            ),
            "gene_list": MemoryDataset(GeneList(list(counts.columns[:50]), source="genes.txt")),
            "run_provenance": MemoryDataset(provenance),
            "params:preprocessing": MemoryDataset(PreprocessingParams()),
            "preprocessed_sections": PartitionedDataset(
                path=str(tmp_path / "sections"), dataset=AnnDataDataset, filename_suffix=".h5ad", overwrite=True
            ),
        }
    )
    SequentialRunner().run(create_pipeline(), catalog)
    sections = catalog["preprocessed_sections"].load()
    c3, c4, c5 = sections["C3"](), sections["C4"](), sections["C5"]()
    library = c3.uns["spatial"]["C3"]
    pitch = np.polyfit(spots["x"], spots["pixel_x"], 1)[0]  # full-resolution px between array columns
    assert library["scalefactors"]["spot_diameter_fullres"] == pytest.approx(pitch / 2)  # 100 µm of 200 µm
    assert library["metadata"]["mpp"] == pytest.approx(200 / pitch)  # about 0.5 µm/px on the scanner
    assert c3.uns["provenance"]["genes"] == {"n": 50, "method": "file", "file": "genes.txt"}
    assert c3.uns["provenance"]["code"]["git_commit"] == "abc" and c3.uns["provenance"]["mlflow"]["run_id"] == "r1"
    assert c3.uns["provenance"]["normalisation"]["method"] == "reference"
    assert_scanpy_and_squidpy_draw_it_over_the_tissue(c3)
    # only a preview: the same tissue at its scale, the same spot size in full-resolution pixels
    preview = c4.uns["spatial"]["C4"]
    assert preview["metadata"]["image_file"].endswith("C4_HE_image_dark.png")
    assert preview["scalefactors"]["tissue_hires_scalef"] == pytest.approx(half.width / image.shape[1])
    assert preview["scalefactors"]["spot_diameter_fullres"] == library["scalefactors"]["spot_diameter_fullres"]
    assert_scanpy_and_squidpy_draw_it_over_the_tissue(c4)
    # without an image: the grid columns, no empty uns['spatial'] for scanpy to trip over
    assert "spatial" not in c5.uns and {"in_tissue", "array_row", "array_col"} <= set(c5.obs.columns)
