"""The HEST-1k reader on a layout-true HEST copy of a real her2st crop, against the her2st reader."""

from __future__ import annotations

import json

import anndata as ad
import numpy as np
import pandas as pd
import pytest
from kedro.io import DataCatalog, MemoryDataset
from kedro.runner import SequentialRunner
from kedro_datasets.partitions import PartitionedDataset
from PIL import Image

from tests.conftest import C3_WINDOW, write_her2st_section, write_hest_sample
from thitogene_kedro.datasets import (
    AnnDataDataset,
    NumpyDataset,
    SectionImagesDataset,
    SectionPreviewsDataset,
    SpatialSectionsDataset,
)
from thitogene_kedro.pipelines import graph_building, patching, preprocessing
from thitogene_kedro.pipelines.preprocessing.params import PreprocessingParams
from thitogene_kedro.processing.genes import GeneList
from thitogene_kedro.processing.patches import PatchingParams
from thitogene_kedro.processing.spot_graphs import GraphBuildingParams
from thitogene_kedro.sections import SectionDataError, SectionSource, hest

pytestmark = pytest.mark.skipif(not C3_WINDOW.is_dir(), reason="real C3 fixture (../shared/data) not present")
SAMPLE = "SPA121"  # HEST-1k's id of her2st C3


@pytest.fixture(scope="module")
def c3():
    counts = pd.read_csv(C3_WINDOW / "C3_window_785genes.tsv.gz", sep="\t", index_col=0)
    spots = pd.read_csv(C3_WINDOW / "C3_window_selection.tsv", sep="\t")
    image = np.asarray(Image.open(C3_WINDOW / "C3_window.jpg").convert("RGB"))
    pitch = float(np.polyfit(spots["x"], spots["pixel_x"], 1)[0])  # px between array columns, 200 µm apart
    return counts, spots, image, 200 / pitch


@pytest.fixture(scope="module")
def copies(c3, tmp_path_factory):
    """The same real crop as a her2st checkout and as a HEST-1k download."""
    counts, spots, image, mpp = c3
    root = tmp_path_factory.mktemp("copies")
    write_her2st_section(root / "her2st", "C3", counts, spots, image, image_name="C3_window.png")
    write_hest_sample(root / "hest", SAMPLE, counts, spots, image, patient="Patient C", mpp=mpp)
    return root / "her2st", root / "hest"


def hest_id(her2st_id: str) -> str:
    x, y = her2st_id.split("x")
    return f"{int(x):03d}x{int(y):03d}"


def test_the_hest_copy_reads_as_the_her2st_reader_reads_the_section(copies, c3, caplog):
    her2st_root, hest_root = copies
    with caplog.at_level("INFO"):
        from_hest = SectionSource("hest", hest_root).read(SAMPLE)
    from_her2st = SectionSource("her2st", her2st_root).read("C3")
    assert "1 spot(s) with in_tissue == 0 dropped" in caplog.text
    assert list(from_hest.obs_names) == [hest_id(s) for s in from_her2st.obs_names]
    np.testing.assert_array_equal(from_hest.X.toarray(), from_her2st.X.toarray())
    assert list(from_hest.var_names) == list(from_her2st.var_names)
    for column in ("array_x", "array_y", "pixel_x", "pixel_y"):
        np.testing.assert_array_equal(from_hest.obs[column].to_numpy(), from_her2st.obs[column].to_numpy())
    assert from_hest.uns["patient"] == "Patient C" and from_hest.uns["source"] == "hest"
    assert from_hest.uns["image"]["width"] == from_her2st.uns["image"]["width"]
    # the metadata's estimated pixel size and 100 µm spots give the her2st reader's half-pitch spot
    pitch = np.polyfit(from_her2st.obs["array_x"], from_her2st.obs["pixel_x"], 1)[0]
    assert from_hest.uns["spot"]["diameter_fullres"] == pytest.approx(pitch / 2)
    assert from_hest.uns["hest"]["pixel_size_um_estimated"] == pytest.approx(c3[3])  # not the embedded 1.0


def data_catalog(source: str, root, out) -> DataCatalog:
    def partitioned(name, dataset, suffix):
        return PartitionedDataset(path=str(out / name), dataset=dataset, filename_suffix=suffix, overwrite=True)

    genes = GeneList(list(pd.read_csv(C3_WINDOW / "C3_window_785genes.tsv.gz", sep="\t", nrows=1).columns[1:80]))
    return DataCatalog({
        "raw_sections": SpatialSectionsDataset(source=source, path=str(root)),
        "raw_images": SectionImagesDataset(source=source, path=str(root)),
        "raw_previews": SectionPreviewsDataset(source=source, path=str(root)),
        "gene_list": MemoryDataset(genes),
        "run_provenance": MemoryDataset({}),
        "params:preprocessing": MemoryDataset(PreprocessingParams(sections="all")),
        "params:patching": MemoryDataset(PatchingParams()),
        "params:graph_building": MemoryDataset(GraphBuildingParams()),
        "preprocessed_sections": partitioned("sections", AnnDataDataset, ".h5ad"),
        "section_patches": partitioned("patches", NumpyDataset, ".npz"),
        "spot_graphs": partitioned("graphs", NumpyDataset, ".npz"),
    })  # fmt: skip


def test_the_data_pipelines_give_the_same_section_patches_and_graph_from_both_copies(copies, tmp_path):
    """Preprocessing, patching (112 px from the pyramidal TIFF, tile by tile) and graph building."""
    pipeline = preprocessing.create_pipeline() + patching.create_pipeline() + graph_building.create_pipeline()
    outputs = {}
    for source, root, section in (("her2st", copies[0], "C3"), ("hest", copies[1], SAMPLE)):
        catalog = data_catalog(source, root, tmp_path / source)
        SequentialRunner().run(pipeline, catalog)
        outputs[source] = (
            catalog["preprocessed_sections"].load()[section](),
            catalog["section_patches"].load()[section](),
            catalog["spot_graphs"].load()[section](),
        )
    (her2st_section, her2st_patches, her2st_graph), (hest_section, hest_patches, hest_graph) = outputs.values()
    np.testing.assert_array_equal(hest_section.X, her2st_section.X)
    assert hest_section.uns["spatial"][SAMPLE]["scalefactors"]["spot_diameter_fullres"] == pytest.approx(
        her2st_section.uns["spatial"]["C3"]["scalefactors"]["spot_diameter_fullres"]
    )
    assert hest_patches["patches"].tobytes() == her2st_patches["patches"].tobytes()  # bit-identical pixels
    assert list(hest_patches["spot_ids"]) == [hest_id(s) for s in her2st_patches["spot_ids"]]
    np.testing.assert_array_equal(hest_graph["edge_index"], her2st_graph["edge_index"])
    np.testing.assert_array_equal(hest_graph["positions"], her2st_graph["positions"])


def test_hests_own_patches_are_centred_on_their_spots(copies, c3):
    _, hest_root = copies
    section = hest.read_section(hest_root, SAMPLE)
    stored = hest.read_patches(hest_root, SAMPLE, section.obs_names)
    assert stored["patches"].shape == (section.n_obs, 224, 224, 3) and stored["patches"].dtype == np.uint8
    centres = section[stored["spot_ids"]].obsm["spatial"]
    np.testing.assert_allclose(stored["centres"], centres, atol=1.0)  # the file stores top-left corners
    with pytest.raises(SectionDataError, match=r"patches/SPA121.h5.*not spots of st/SPA121.h5ad"):
        hest.read_patches(hest_root, SAMPLE, section.obs_names[1:])


def test_samples_of_one_patient_share_it_for_leave_one_patient_out(c3, tmp_path):
    counts, spots, _, mpp = c3
    for sample, patient in (("S1", "Patient C"), ("S2", "Patient C"), ("S3", "Patient D")):
        write_hest_sample(tmp_path, sample, counts, spots, None, patient=patient, mpp=mpp)
    source = SectionSource("hest", tmp_path)
    assert source.section_ids() == ["S1", "S2", "S3"]
    assert [source.patient_of(s) for s in source.section_ids()] == ["Patient C", "Patient C", "Patient D"]
    assert source.image_path("S1") is None and not source.read("S1").uns["image"]["present"]


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        ("no_metadata", r"metadata/S1.json.*metadata file does not exist; download metadata/"),
        ("no_pixel_size", r"metadata/S1.json.*pixel_size_um_estimated is None.*embedded pixel size is not used"),
        ("no_array_row", r"st/S1.h5ad.*obs lacks \['array_row'\]"),
        ("fractional_counts", r"st/S1.h5ad.*non-integer"),
    ],
)
def test_bad_hest_input_is_named(c3, tmp_path, damage, message):
    counts, spots, _, mpp = c3
    write_hest_sample(tmp_path, "S1", counts, spots, None, patient="P", mpp=mpp)
    metadata, st = tmp_path / "metadata" / "S1.json", tmp_path / "st" / "S1.h5ad"
    if damage == "no_metadata":
        metadata.unlink()
    elif damage == "no_pixel_size":
        metadata.write_text(json.dumps({k: v for k, v in json.loads(metadata.read_text()).items()
                                        if k != "pixel_size_um_estimated"}))  # fmt: skip
    else:
        adata = ad.read_h5ad(st)
        if damage == "no_array_row":
            del adata.obs["array_row"]
        else:
            adata.X = adata.X * 0.5
        adata.write_h5ad(st)
    with pytest.raises(SectionDataError, match=message):
        hest.read_section(tmp_path, "S1")
