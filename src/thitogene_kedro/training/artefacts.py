"""Typed artefacts of training: the settings a model's inputs were made with, and the trained model.

A :class:`TrainedModel` is saved as plain values and tensors (``torch.save``, loaded with
``weights_only=True``); :meth:`TrainedModel.to_dict` / :meth:`TrainedModel.from_dict` are the only
places that know its stored layout.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import torch
from pydantic import BaseModel, ConfigDict, Field

from thitogene_kedro.models.registry import ModelSpec, build_model
from thitogene_kedro.processing.inputs import PreparedSection
from thitogene_kedro.processing.normalisation import NormalisationParams
from thitogene_kedro.processing.patches import PatchingParams
from thitogene_kedro.processing.spot_graphs import GraphBuildingParams
from thitogene_kedro.training.folds import Fold


class InputSettings(BaseModel):
    """How a model's inputs were made: target normalisation, patches, spot graph and position indices.

    Stored with every trained model, so inference cuts patches, builds graphs and checks positions
    the way the model was trained, whatever the current parameters say.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    normalisation: NormalisationParams = NormalisationParams()
    patching: PatchingParams = PatchingParams()
    graph: GraphBuildingParams = GraphBuildingParams()
    # µm per full-resolution pixel of the training sections (their median), from their spots' true
    # size: inference cuts patches of the same physical size from a new slide. None: a model file
    # written before it was stored.
    mpp: float | None = Field(None, gt=0)
    # the frozen encoder whose features the model takes (thitogene_head, linear_probe): its name,
    # weights SHA-256, width, input and field (EncoderIdentity); None for models on patches
    encoder: dict[str, Any] | None = None

    @property
    def patch_size(self) -> int:
        return self.patching.patch_size

    @property
    def position_table_size(self) -> int:
        return self.graph.position_table_size


@dataclass(frozen=True)
class FoldInputs:
    """A fold's model inputs, built once: its training, validation and held-out sections."""

    fold: Fold
    genes: list[str]
    settings: InputSettings
    train: list[PreparedSection]
    validation: list[PreparedSection]
    test: list[PreparedSection]


@dataclass
class TrainedModel:
    """One fold's trained model: what it is, what it predicts, how its inputs are made, its weights."""

    spec: ModelSpec
    genes: list[str]
    fold: Fold
    inputs: InputSettings
    state_dict: dict[str, torch.Tensor]
    training_gene_means: list[float] = field(default_factory=list)  # ranks genes by training-side expression

    def build(self) -> torch.nn.Module:
        """The network with these weights, in eval mode."""
        network = network_for(self.spec, self.genes, self.inputs)
        network.load_state_dict(self.state_dict)
        return network.eval()

    def describe(self) -> dict[str, Any]:
        """What the model is and how its inputs were made, for the provenance of what it predicts."""
        return {
            "name": self.spec.name, "preset": self.spec.preset,
            "overrides": json.dumps(self.spec.overrides, sort_keys=True) if self.spec.overrides else "",
            "fold": self.fold.name, "training_sections": list(self.fold.train), "n_genes": len(self.genes),
            "normalisation": self.inputs.normalisation.model_dump(mode="json"),
            "patch_px": self.inputs.patch_size, "graph_k": self.inputs.graph.k,
        } | ({"encoder": self.inputs.encoder["name"], "encoder_weights_sha256": self.inputs.encoder["weights_sha256"]}
             if self.inputs.encoder else {})  # fmt: skip

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.spec.model_dump(mode="json"),
            "genes": list(self.genes),
            "fold": self.fold.model_dump(mode="json"),
            "inputs": self.inputs.model_dump(mode="json"),
            "state_dict": self.state_dict,
            "training_gene_means": [float(v) for v in self.training_gene_means],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainedModel:
        """Raises ValueError for a file written before input settings were stored with the model."""
        if "inputs" not in data:
            raise ValueError(
                "this model file has no input settings (written by an older version); retrain it "
                "(delete its data/06_models folder and rerun the training pipeline)"
            )
        return cls(
            spec=ModelSpec.model_validate(data["model"]),
            genes=[str(g) for g in data["genes"]],
            fold=Fold.model_validate(data["fold"]),
            inputs=InputSettings.model_validate(data["inputs"]),
            state_dict=data["state_dict"],
            training_gene_means=list(data.get("training_gene_means", [])),
        )


def network_for(spec: ModelSpec, genes: list[str], inputs: InputSettings) -> torch.nn.Module:
    """A freshly initialised network for ``genes`` with the data side's patch size and position table."""
    feature_dim = int(inputs.encoder["dim"]) if inputs.encoder else None
    return build_model(spec, len(genes), patch_size=inputs.patch_size, position_table_size=inputs.position_table_size,
                       feature_dim=feature_dim)  # fmt: skip
