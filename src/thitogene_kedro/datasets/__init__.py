"""Kedro datasets the project needs and kedro-datasets lacks."""

from thitogene_kedro.datasets.anndata_dataset import AnnDataDataset
from thitogene_kedro.datasets.atomic_partitions import AtomicPartitionedDataset, FigureFolderDataset
from thitogene_kedro.datasets.checkpoint_dataset import CheckpointDataset
from thitogene_kedro.datasets.earlier_runs_dataset import EarlierRuns, EarlierRunsDataset
from thitogene_kedro.datasets.figure_dataset import FigureDataset
from thitogene_kedro.datasets.frozen_encoder_dataset import EncoderWeightsDataset, FrozenEncoderDataset
from thitogene_kedro.datasets.gene_list_dataset import GeneListDataset
from thitogene_kedro.datasets.inference_datasets import RegistryModelDataset, SlideImageDataset, SpotTableDataset
from thitogene_kedro.datasets.numpy_dataset import NumpyDataset
from thitogene_kedro.datasets.partition_cache_dataset import PartitionCacheDataset
from thitogene_kedro.datasets.registered_model_dataset import RegisteredModelDataset
from thitogene_kedro.datasets.run_provenance_dataset import RunProvenanceDataset
from thitogene_kedro.datasets.section_images_dataset import SectionImagesDataset, SectionPreviewsDataset
from thitogene_kedro.datasets.spatial_sections_dataset import SectionCollection, SpatialSectionsDataset
from thitogene_kedro.datasets.spatialdata_dataset import SpatialDataZarrDataset
from thitogene_kedro.datasets.stored_patches_dataset import StoredPatchesDataset
from thitogene_kedro.datasets.torch_model_dataset import TorchModelDataset
from thitogene_kedro.training.checkpoints import CheckpointStore

__all__ = [
    "AnnDataDataset",
    "AtomicPartitionedDataset",
    "CheckpointDataset",
    "CheckpointStore",
    "EarlierRuns",
    "EarlierRunsDataset",
    "FigureDataset",
    "FigureFolderDataset",
    "EncoderWeightsDataset",
    "FrozenEncoderDataset",
    "GeneListDataset",
    "NumpyDataset",
    "PartitionCacheDataset",
    "RegisteredModelDataset",
    "RegistryModelDataset",
    "RunProvenanceDataset",
    "SectionCollection",
    "SectionImagesDataset",
    "SectionPreviewsDataset",
    "SlideImageDataset",
    "SpatialDataZarrDataset",
    "SpatialSectionsDataset",
    "SpotTableDataset",
    "StoredPatchesDataset",
    "TorchModelDataset",
]
