"""The three data pipelines on the real her2st copy (skipped where ../shared/data/her2st is absent)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from kedro.io import DataCatalog, MemoryDataset
from kedro.runner import SequentialRunner
from kedro_datasets.partitions import PartitionedDataset
from PIL import Image

from tests.conftest import GENE_LIST_785, HER2ST_REAL, SHARED_DATA
from thitogene_kedro.datasets import (
    AnnDataDataset,
    GeneListDataset,
    NumpyDataset,
    SectionImagesDataset,
    SpatialSectionsDataset,
)
from thitogene_kedro.pipelines import graph_building, patching, preprocessing
from thitogene_kedro.pipelines.patching.nodes import extract_section_patches
from thitogene_kedro.pipelines.preprocessing.params import PreprocessingParams
from thitogene_kedro.processing.patches import PatchingParams
from thitogene_kedro.processing.spot_graphs import GraphBuildingParams

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not HER2ST_REAL.is_dir(), reason="real her2st copy (../shared/data/her2st) not present"),
]
SECTIONS = "B4 C3 A2"  # two with images (B4, C3: one zero-library spot each), one counts-only


@pytest.fixture(scope="module")
def outputs(tmp_path_factory):
    root = tmp_path_factory.mktemp("her2st_run")

    def partitioned(name, dataset, suffix):
        return PartitionedDataset(path=str(root / name), dataset=dataset, filename_suffix=suffix, overwrite=True)

    catalog = DataCatalog(
        {
            "raw_sections": SpatialSectionsDataset(source="her2st", path=str(HER2ST_REAL)),
            "raw_images": SectionImagesDataset(source="her2st", path=str(HER2ST_REAL)),
            "run_provenance": MemoryDataset({}),
            "gene_list": GeneListDataset(filepath=str(GENE_LIST_785)),
            "params:preprocessing": MemoryDataset(PreprocessingParams(sections=SECTIONS)),
            "params:patching": MemoryDataset(PatchingParams()),
            "params:graph_building": MemoryDataset(GraphBuildingParams()),
            "preprocessed_sections": partitioned("sections", AnnDataDataset, ".h5ad"),
            "section_patches": partitioned("patches", NumpyDataset, ".npz"),
            "spot_graphs": partitioned("graphs", NumpyDataset, ".npz"),
        }
    )
    pipeline = preprocessing.create_pipeline() + patching.create_pipeline() + graph_building.create_pipeline()
    results = SequentialRunner().run(pipeline, catalog)
    return catalog, {name: ds.load() for name, ds in results.items()}


def test_spot_counts_and_genes(outputs):
    catalog, results = outputs
    sections = catalog["preprocessed_sections"].load()
    expected = {"B4": 283, "C3": 180, "A2": 325}
    genes = GENE_LIST_785.read_text().split()
    for name, n_spots in expected.items():
        adata = sections[name]()
        assert adata.n_obs == n_spots
        assert adata.var_names.tolist() == genes  # all 785 genes found, in model order
        assert not np.isnan(adata.X).any()
    assert results["preprocessing_report"].set_index("section").loc["A2", "image_present"] == False  # noqa: E712


def test_zero_library_spots_keep_zero_targets(outputs):
    catalog, _ = outputs
    sections = catalog["preprocessed_sections"].load()
    for name in ("B4", "C3"):
        adata = sections[name]()
        zero = adata.obs["zero_library"].to_numpy()
        assert zero.sum() == 1
        assert (adata.X[zero] == 0).all() and not np.isnan(adata.X).any()


def test_patches_match_a_direct_crop_of_the_jpeg(outputs):
    catalog, results = outputs
    patches = catalog["section_patches"].load()
    assert sorted(patches) == ["B4", "C3"]  # A2 has no image in this copy
    b4 = catalog["preprocessed_sections"].load()["B4"]()
    stored = patches["B4"]()
    array = stored["patches"]
    assert list(stored["spot_ids"]) == list(b4.obs_names)  # the ids travel with the patches
    assert array.shape == (283, 112, 112, 3) and array.dtype == np.uint8
    spot = b4.obs_names.get_loc("10x14")
    cx, cy = np.floor(b4.obsm["spatial"][spot]).astype(int)
    with Image.open(b4.uns["image"]["path"]) as image:
        expected = np.asarray(image.convert("RGB").crop((cx - 56, cy - 56, cx + 56, cy + 56)))
    np.testing.assert_array_equal(array[spot], expected)
    report = results["patching_report"].set_index("section")
    assert report.loc["A2", "status"] == "skipped: no image"
    assert report.loc["B4", "peak_increase_mib"] < 1024


def test_patching_is_bit_identical_across_runs(outputs):
    catalog, _ = outputs
    sections = catalog["preprocessed_sections"].load()
    images = SectionImagesDataset(source="her2st", path=str(HER2ST_REAL)).load()
    again, _ = extract_section_patches({"C3": sections["C3"]}, images, PatchingParams())
    stored = catalog["section_patches"].load()["C3"]()
    assert again["C3"]["patches"].tobytes() == stored["patches"].tobytes()
    assert again["C3"]["spot_ids"].tolist() == stored["spot_ids"].tolist()


def test_spot_graphs_have_four_neighbours(outputs):
    catalog, _ = outputs
    graphs = catalog["spot_graphs"].load()
    for name, n_spots in {"B4": 283, "C3": 180, "A2": 325}.items():
        graph = graphs[name]()
        src, dst = graph["edge_index"]
        assert np.bincount(src, minlength=n_spots).tolist() == [4] * n_spots
        assert not (src == dst).any()
        assert graph["positions"].shape == (n_spots, 2) and graph["positions"].max() < 64


def test_all_35_sections_read_for_counts():
    table = pd.read_csv(SHARED_DATA / "her2st-sections.csv").set_index("section")
    loaders = SpatialSectionsDataset(source="her2st", path=str(HER2ST_REAL)).load()
    assert len(loaders) == 35
    genes = GENE_LIST_785.read_text().split()
    for name, load in loaders.items():
        adata = load()
        assert adata.n_obs == table.loc[name, "n_spots"], name
        assert adata.uns["image"]["present"] == bool(table.loc[name, "fullres_image_present"]), name
        assert set(genes) <= set(adata.var_names), name
