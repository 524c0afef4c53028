"""The project's Kedro datasets: round trips, laziness, and refusals."""

from __future__ import annotations

import base64
import io

import anndata as ad
import numpy as np
import pandas as pd
import pytest
from kedro.io import DatasetError, Version
from kedro.io.core import generate_timestamp
from kedro_datasets.partitions import PartitionedDataset
from PIL import Image

from thitogene_kedro.datasets import (
    AnnDataDataset,
    AtomicPartitionedDataset,
    FigureDataset,
    GeneListDataset,
    NumpyDataset,
    SectionImagesDataset,
    SpatialSectionsDataset,
)
from thitogene_kedro.sections.images import SlideImage


def _adata() -> ad.AnnData:
    adata = ad.AnnData(X=np.arange(6, dtype=np.float32).reshape(3, 2), obs=pd.DataFrame(index=["a", "b", "c"]))
    adata.uns["image"] = {"path": "x.jpg", "present": True, "width": 5, "height": 6}
    return adata


def test_anndata_dataset_round_trip_and_versions(tmp_path):
    dataset = AnnDataDataset(filepath=str(tmp_path / "s.h5ad"))
    assert not dataset.exists()
    dataset.save(_adata())
    loaded = dataset.load()
    np.testing.assert_array_equal(loaded.X, _adata().X)
    assert loaded.uns["image"]["width"] == 5
    versioned = AnnDataDataset(filepath=str(tmp_path / "v.h5ad"), version=Version(None, generate_timestamp()))
    versioned.save(_adata())
    assert versioned.exists() and versioned.load().n_obs == 3
    with pytest.raises(DatasetError, match="expects an AnnData"):
        dataset.save(np.zeros(3))


def test_numpy_dataset_npy_and_npz(tmp_path):
    array = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    npy = NumpyDataset(filepath=str(tmp_path / "p.npy"))
    npy.save(array)
    loaded = npy.load()
    assert loaded.dtype == np.uint8
    np.testing.assert_array_equal(loaded, array)
    npz = NumpyDataset(filepath=str(tmp_path / "g.npz"))
    npz.save({"edge_index": np.array([[0, 1], [1, 0]]), "spot_ids": np.array(["1x1", "2x1"])})
    assert npz.load()["spot_ids"].tolist() == ["1x1", "2x1"]
    with pytest.raises(DatasetError, match="holds a dict of arrays"):
        npz.save(array)
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(DatasetError):
        NumpyDataset(filepath=str(tmp_path / "obj.npy")).load()
    with pytest.raises(DatasetError, match=".npy or .npz"):
        NumpyDataset(filepath=str(tmp_path / "p.txt")).save(array)


def test_partitioned_numpy_dataset(tmp_path):
    partitioned = PartitionedDataset(path=str(tmp_path / "patches"), dataset=NumpyDataset, filename_suffix=".npy")
    partitioned.save({"A1": np.zeros((2, 4, 4, 3), np.uint8), "B2": np.ones((1, 4, 4, 3), np.uint8)})
    loaded = partitioned.load()
    assert sorted(loaded) == ["A1", "B2"] and loaded["B2"]().sum() == 48


def test_gene_list_dataset(tmp_path):
    assert GeneListDataset(filepath=None).load() is None
    text = tmp_path / "genes.txt"
    text.write_text("# comment\nERBB2\n\nGRB7\n")
    assert GeneListDataset(filepath=str(text)).load() == ["ERBB2", "GRB7"]
    npy = tmp_path / "genes.npy"
    np.save(npy, np.array(["ERBB2", "GRB7", "KRT19"]))
    assert GeneListDataset(filepath=str(npy)).load() == ["ERBB2", "GRB7", "KRT19"]
    text.write_text("ERBB2\nGRB7\nERBB2\n")
    with pytest.raises(DatasetError, match="duplicate genes"):
        GeneListDataset(filepath=str(text)).load()
    with pytest.raises(DatasetError, match="does not exist"):
        GeneListDataset(filepath=str(tmp_path / "none.txt")).load()


def test_spatial_sections_dataset_is_lazy_and_read_only(toy_her2st):
    dataset = SpatialSectionsDataset(source="her2st", path=str(toy_her2st))
    loaders = dataset.load()
    assert sorted(loaders) == ["A1", "A2"]
    assert callable(loaders["A1"]) and loaders["A1"]().uns["section"] == "A1"
    with pytest.raises(DatasetError, match="read-only"):
        dataset.save({})
    with pytest.raises(ValueError, match="unknown data source"):
        SpatialSectionsDataset(source="nanostring", path=str(toy_her2st))
    with pytest.raises(ValueError, match="do not apply"):
        SpatialSectionsDataset(source="her2st", path=str(toy_her2st), options={"seed": 1})


def test_section_images_dataset_lists_only_sections_with_images(toy_her2st):
    images = SectionImagesDataset(source="her2st", path=str(toy_her2st)).load()
    assert sorted(images) == ["A1"]
    with images["A1"]() as image:
        assert isinstance(image, SlideImage) and (image.width, image.height) == (200, 200)


def test_figure_dataset_round_trip_and_kedro_viz_preview(tmp_path):
    image = Image.new("RGB", (40, 30), (200, 10, 10))
    dataset = FigureDataset(filepath=str(tmp_path / "figures" / "f.png"))
    dataset.save(image)
    assert dataset.load().size == (40, 30)
    preview = Image.open(io.BytesIO(base64.b64decode(dataset.preview())))
    assert preview.size == (40, 30) and preview.getpixel((0, 0))[:3] == (200, 10, 10)


def _folder_bytes(folder) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_a_failed_partitioned_save_leaves_the_last_good_partitions(tmp_path):
    """A lazy partition that fails (the node's work happens during the save) or an interrupted
    save leaves the folder as the last good save wrote it, and no staging folder."""
    folder = tmp_path / "sections"
    dataset = AtomicPartitionedDataset(
        path=str(folder), dataset={"type": "thitogene_kedro.datasets.NumpyDataset"}, filename_suffix=".npy",
        overwrite=True,
    )  # fmt: skip
    dataset.save({"B4": np.arange(3), "C3": np.arange(4)})
    good = _folder_bytes(folder)

    def broken() -> np.ndarray:
        raise ValueError("C3: spot 10x12 appears twice")

    with pytest.raises(DatasetError, match=r"(?s)sections'.*C3: spot 10x12 appears twice"):
        dataset.save({"B4": lambda: np.arange(5), "C3": broken})
    assert _folder_bytes(folder) == good and sorted(p.name for p in tmp_path.iterdir()) == ["sections"]
    dataset.save({"B4": np.arange(5)})  # a good save replaces the whole folder
    assert sorted(dataset.load()) == ["B4"] and dataset.load()["B4"]().tolist() == list(range(5))


def test_a_failed_file_save_leaves_the_previous_file(tmp_path):
    dataset = AnnDataDataset(filepath=str(tmp_path / "section.h5ad"))
    dataset.save(ad.AnnData(np.ones((2, 3), dtype=np.float32)))
    before = (tmp_path / "section.h5ad").read_bytes()
    with pytest.raises(DatasetError, match="No method registered for writing"):
        dataset.save(ad.AnnData(np.ones((2, 3), dtype=np.float32), uns={"bad": object()}))  # h5py cannot write it
    assert (tmp_path / "section.h5ad").read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["section.h5ad"]


def test_kedro_viz_previews_of_anndata_section_folders_and_figure_folders(tmp_path):
    """What kedro-viz shows in its dataset panel: an AnnData's shape and heads, a section folder's
    partitions with the first one's summary, a figure folder as one contact sheet."""
    import json  # noqa: PLC0415

    from thitogene_kedro.datasets import AtomicPartitionedDataset, FigureDataset, FigureFolderDataset  # noqa: PLC0415

    adata = ad.AnnData(X=np.ones((7, 3), dtype=np.float32))
    adata.var_names = ["ERBB2", "GNAS", "SCD"]
    adata.uns["source"] = "synthetic"
    single = AnnDataDataset(str(tmp_path / "one.h5ad"))
    single.save(adata)
    summary = json.loads(single.preview())
    assert summary["shape"] == "7 spots × 3 genes" and summary["var"] == ["ERBB2", "GNAS", "SCD"]
    assert summary["source"] == "synthetic" and len(summary["obs"]) == 5
    folder = AtomicPartitionedDataset(path=str(tmp_path / "sections"), dataset=AnnDataDataset, filename_suffix=".h5ad")
    folder.save({"A1": adata, "B1": adata})
    listed = json.loads(folder.preview())
    assert listed["partitions"] == 2 and listed["names"] == ["A1", "B1"] and "7 spots" in listed["first (A1)"]["shape"]
    figures = FigureFolderDataset(path=str(tmp_path / "maps"), dataset=FigureDataset, filename_suffix=".png")
    figures.save({f"S{i}": Image.new("RGB", (600, 400), (200, 30 * i, 90)) for i in range(4)})
    sheet = Image.open(io.BytesIO(base64.b64decode(figures.preview())))
    assert sheet.size == (3 * 480, 2 * (320 + 18))  # three columns of 480 px thumbnails, two rows
