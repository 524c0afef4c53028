"""The three data pipelines on the real her2st copy (skipped where ../shared/data/her2st is absent)."""

from __future__ import annotations

import contextlib
import logging

import numpy as np
import pandas as pd
import pytest
from kedro.io import DataCatalog, MemoryDataset
from kedro.runner import SequentialRunner
from kedro_datasets.partitions import PartitionedDataset
from PIL import Image

from tests.conftest import GENE_LIST_785, HER2ST_REAL, SHARED_DATA, assert_scanpy_and_squidpy_draw_it_over_the_tissue
from thitogene_kedro.datasets import (
    AnnDataDataset,
    GeneListDataset,
    NumpyDataset,
    SectionImagesDataset,
    SectionPreviewsDataset,
    SpatialSectionsDataset,
)
from thitogene_kedro.pipelines import graph_building, patching, preprocessing
from thitogene_kedro.pipelines.clustering.nodes import cluster_sections, plot_cluster_maps
from thitogene_kedro.pipelines.clustering.params import ClusteringParams
from thitogene_kedro.pipelines.patching.nodes import extract_section_patches
from thitogene_kedro.pipelines.preprocessing.params import PreprocessingParams
from thitogene_kedro.processing.patches import PatchingParams
from thitogene_kedro.processing.spot_graphs import GraphBuildingParams

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not HER2ST_REAL.is_dir(), reason="real her2st copy (../shared/data/her2st) not present"),
]
# two with images (B4, C3: one zero-library spot each); A1 and A2 have only a preview, A1's in
# register with its spots, A2's not; A1 carries the pathologist's labels
SECTIONS = "B4 C3 A2 A1"
PREVIEW_SCALES = SHARED_DATA / "her2st-sections.csv"
PREPROCESSING_LOG: list[str] = []  # what the module's run logged


@contextlib.contextmanager
def caplog_records():
    """The records logged by the project's modules inside the block (a module fixture cannot use caplog)."""
    records: list[logging.LogRecord] = []
    handler = logging.Handler(logging.INFO)
    handler.emit = records.append
    project = logging.getLogger("thitogene_kedro")
    level = project.level
    project.addHandler(handler)
    project.setLevel(logging.INFO)
    try:
        yield records
    finally:
        project.removeHandler(handler)
        project.setLevel(level)  # section, lowres_scale: the previews' scale


@pytest.fixture(scope="module")
def outputs(tmp_path_factory):
    root = tmp_path_factory.mktemp("her2st_run")

    def partitioned(name, dataset, suffix):
        return PartitionedDataset(path=str(root / name), dataset=dataset, filename_suffix=suffix, overwrite=True)

    catalog = DataCatalog(
        {
            "raw_sections": SpatialSectionsDataset(source="her2st", path=str(HER2ST_REAL)),
            "raw_images": SectionImagesDataset(source="her2st", path=str(HER2ST_REAL)),
            "raw_previews": SectionPreviewsDataset(
                source="her2st", path=str(HER2ST_REAL), options={"preview_scales": str(PREVIEW_SCALES)}
            ),
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
    with caplog_records() as records:
        results = SequentialRunner().run(pipeline, catalog)
    PREPROCESSING_LOG.append("\n".join(r.getMessage() for r in records))
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


def tissue_under_spots(adata, library: str) -> float:
    """The fraction of spots whose centre falls on tissue (not the previews' black background) in hires."""
    layout = adata.uns["spatial"][library]
    hires = layout["images"]["hires"]
    x, y = np.round(adata.obsm["spatial"] * layout["scalefactors"]["tissue_hires_scalef"]).astype(int).T
    return float(np.mean(hires[y, x].max(axis=1) > 40))


def test_a_section_with_only_a_preview_draws_its_tissue_from_it(outputs):
    """A1 has no full-resolution image here: its tissue comes from the app's 2000 px preview at
    the table's scale, under every spot, for scanpy and squidpy; it still gets no patches."""
    catalog, _ = outputs
    a1 = catalog["preprocessed_sections"].load()["A1"]()
    layout = a1.uns["spatial"]["A1"]
    assert layout["metadata"]["image_file"].endswith("app/www/imgs/A1_HE_image_dark.png")
    scale = pd.read_csv(PREVIEW_SCALES).set_index("section").loc["A1", "lowres_scale"]
    hires = layout["images"]["hires"]  # the 2000 x 2138 px preview, shrunk to 2000 px on its longer side
    assert layout["scalefactors"]["tissue_hires_scalef"] == pytest.approx(scale * hires.shape[0] / 2138, rel=1e-3)
    assert tissue_under_spots(a1, "A1") == 1.0
    # a 10 % error in the scale would leave spots on the black background
    shifted = a1.copy()
    shifted.uns["spatial"]["A1"]["scalefactors"]["tissue_hires_scalef"] *= 1.1
    assert tissue_under_spots(shifted, "A1") < 0.95
    assert_scanpy_and_squidpy_draw_it_over_the_tissue(a1)
    assert "A1" not in catalog["section_patches"].load()


def test_a_preview_out_of_register_with_its_spots_is_left_out_with_the_reason(outputs):
    """A2's preview does not line up with its spot table (a fifth of the spots land on the black
    background at the table's scale): no tissue under its spots, and the log says why."""
    catalog, _ = outputs
    assert "spatial" not in catalog["preprocessed_sections"].load()["A2"]().uns
    assert "Section A2: tissue preview" in PREPROCESSING_LOG[0] and "not registered" in PREPROCESSING_LOG[0]


def test_cluster_maps_of_a_real_annotated_section_lie_over_its_tissue(outputs, tmp_path):
    """The pathologist's domains of A1 and the clusters of its observed expression, drawn over the
    preview, one colour per domain in both panels, ARI in the title."""
    catalog, _ = outputs
    sections = catalog["preprocessed_sections"].load()
    scores, _, _, clustered = cluster_sections({"A1": sections["A1"]}, ClusteringParams(n_init=4))
    ari = scores.set_index("source").loc["observed", "ari"]
    assert 0 < ari < 1
    a1 = clustered["A1"]
    assert "A1" in a1.uns["spatial"] and len(a1.uns["annotation_colors"]) == a1.obs["annotation"].cat.categories.size
    figure = np.asarray(plot_cluster_maps({"A1": lambda: a1})["A1_clusters"], dtype=np.int16)
    bare = a1.copy()
    del bare.uns["spatial"]
    without_tissue = np.asarray(plot_cluster_maps({"A1": lambda: bare})["A1_clusters"], dtype=np.int16)
    # the tissue fills the panels around and between the spots (ST spots cover a fifth of the area)
    assert figure.shape == without_tissue.shape
    assert np.mean(np.abs(figure - without_tissue).max(axis=2) > 30) > 0.2
    Image.fromarray(figure.astype(np.uint8)).save(tmp_path / "A1_clusters.png")
    assert_scanpy_and_squidpy_draw_it_over_the_tissue(a1, color="annotation")


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
