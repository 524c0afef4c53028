"""A trained model as one file: a :class:`~thitogene_kedro.training.artefacts.TrainedModel` (``torch.save``, tensors only)."""

from __future__ import annotations

import io

import torch

from thitogene_kedro.datasets._versioned_file import VersionedFileDataset
from thitogene_kedro.training.artefacts import TrainedModel


class TorchModelDataset(VersionedFileDataset[TrainedModel, TrainedModel]):
    """A :class:`TrainedModel` saved with ``torch.save`` as :meth:`TrainedModel.to_dict` (model spec, genes,
    fold, input settings, weights, training-side gene means).

    Loading uses ``weights_only=True``: the file can hold tensors and plain Python values, never
    arbitrary pickled objects.
    """

    def load(self) -> TrainedModel:
        with self._fs.open(self._load_path(), "rb") as handle:
            return TrainedModel.from_dict(torch.load(io.BytesIO(handle.read()), map_location="cpu", weights_only=True))

    def save(self, data: TrainedModel) -> None:
        buffer = io.BytesIO()
        torch.save(data.to_dict(), buffer)
        with self._writing() as path, self._fs.open(path, "wb") as handle:
            handle.write(buffer.getvalue())
        self._invalidate_cache()
