"""The preprocessing pipeline through a DataCatalog and Kedro's SequentialRunner."""

from __future__ import annotations

import numpy as np
from kedro.io import DataCatalog, MemoryDataset
from kedro.runner import SequentialRunner
from kedro_datasets.partitions import PartitionedDataset

from thitogene_kedro.datasets import AnnDataDataset, SpatialSectionsDataset
from thitogene_kedro.pipelines.preprocessing import create_pipeline
from thitogene_kedro.pipelines.preprocessing.params import PreprocessingParams


def test_pipeline_runs_through_catalog(toy_her2st, tmp_path, caplog):
    catalog = DataCatalog(
        {
            "raw_sections": SpatialSectionsDataset(source="her2st", path=str(toy_her2st)),
            "gene_list": MemoryDataset(["G4", "G0", "G2"]),
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
