"""One configuration entry builds any model: ``{name, preset, overrides}``.

``preset`` picks a named configuration of the model; ``overrides`` is a nested mapping merged on
top of it (e.g. ``{"vit": {"depth": 8}}`` or ``{"components": {"gat": false}}``). The gene count
always comes from the data. Presets:

- ``paper_her2st`` / ``paper_cscc``: the published architectures with the correct behaviour for
  every reference quirk (pixels in [0, 1], standard GAT with self-loops, per-spot augmentation);
- ``reference_her2st`` / ``reference_cscc``: the same architectures with the reference code's
  behaviours (raw 0–255 pixels, receiver-normalised GAT without self-loops, per-section
  augmentation), for reproducing published numbers or loading published weights;
- ``small``: a compact configuration of the same structure for CPU work and tests;
- ``light`` (``thitogene_head`` only): THItoGene's head narrowed for foundation features (tokens
  22 × 16 wide, 2 ViT blocks, a 4-head GAT of 128), for fast training on cached features.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from thitogene_kedro.models.base import SpotExpressionModel
from thitogene_kedro.models.hist2st import Hist2ST, Hist2STConfig
from thitogene_kedro.models.histogene import HisToGene, HisToGeneConfig
from thitogene_kedro.models.linear_probe import LinearProbe, LinearProbeConfig
from thitogene_kedro.models.spatial_head import SpatialHeadConfig, THItoGeneSpatialHead
from thitogene_kedro.models.thitogene import THItoGene, THItoGeneConfig

ModelName = Literal["thitogene", "histogene", "hist2st", "thitogene_head", "linear_probe"]

MODELS: dict[str, tuple[type[SpotExpressionModel], type[BaseModel]]] = {
    "thitogene": (THItoGene, THItoGeneConfig),
    "histogene": (HisToGene, HisToGeneConfig),
    "hist2st": (Hist2ST, Hist2STConfig),
    "thitogene_head": (THItoGeneSpatialHead, SpatialHeadConfig),
    "linear_probe": (LinearProbe, LinearProbeConfig),
}

_THITOGENE_REFERENCE = {"input": {"scale": "raw"}, "gat": {"softmax_axis": "receivers", "self_loops": False}}
_CSCC_DEPTH = {"vit": {"depth": 8}}

PRESETS: dict[str, dict[str, dict[str, Any]]] = {
    "thitogene": {
        "paper_her2st": {},
        "paper_cscc": _CSCC_DEPTH,
        "reference_her2st": _THITOGENE_REFERENCE,
        "reference_cscc": {**_THITOGENE_REFERENCE, **_CSCC_DEPTH},
        "small": {
            "odconv": {"out_channels": 8},
            "capsnet": {
                "stem_channels": [8, 16, 16, 32],
                "primary_capsules": 8,
                "primary_dim": 4,
                "capsules": 6,
                "capsule_dim": 16,
            },
            "vit": {"depth": 1, "heads": 2, "head_dim": 16, "mlp_dim": 128},
            "gat": {"heads": 2, "hidden_dim": 32, "out_dim": 32},
            "head_hidden_dim": 64,
        },
    },
    "histogene": {
        "paper_her2st": {},
        "paper_cscc": {},
        "reference_her2st": {"input_scale": "raw"},
        "reference_cscc": {"input_scale": "raw"},
        "small": {"dim": 64, "depth": 1, "heads": 2, "head_dim": 16, "mlp_dim": 128},
    },
    "hist2st": {
        "paper_her2st": {},
        "paper_cscc": {"max_neighbour_distance": None},
        "reference_her2st": {"input_scale": "raw", "distillation": {"draw": "section"}},
        "reference_cscc": {"input_scale": "raw", "distillation": {"draw": "section"}, "max_neighbour_distance": None},
        "small": {
            "channel": 8,
            "down_channels": 1,
            "convmixer_depth": 1,
            "transformer_depth": 1,
            "gnn_depth": 2,
            "heads": 2,
            "head_dim": 16,
            "mlp_dim": 128,
            "distillation": {"copies": 2},
        },
    },
    # on frozen features (docs/encoders.md): THItoGene's ViT and GAT at their paper or small sizes,
    # or ``light``: the same structure narrowed for rich features, about 1/30 of the paper's FLOPs
    "thitogene_head": {
        "paper_her2st": {},
        "paper_cscc": _CSCC_DEPTH,
        "light": {
            "tokens": 20,
            "token_dim": 16,
            "vit": {"depth": 2, "heads": 4, "head_dim": 32, "mlp_dim": 512},
            "gat": {"heads": 4, "hidden_dim": 128, "out_dim": 128},
            "head_hidden_dim": 256,
        },
        "small": {
            "tokens": 6,
            "token_dim": 16,
            "vit": {"depth": 1, "heads": 2, "head_dim": 16, "mlp_dim": 128},
            "gat": {"heads": 2, "hidden_dim": 32, "out_dim": 32},
            "head_hidden_dim": 64,
        },
    },
    "linear_probe": {"paper_her2st": {}, "paper_cscc": {}, "small": {"pca_components": 32}},
}


class ModelSpec(BaseModel):
    """The ``model`` entry of a configuration."""

    model_config = ConfigDict(extra="forbid")

    name: ModelName = "thitogene"
    preset: str = "paper_her2st"
    overrides: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _preset_exists(self) -> ModelSpec:
        """An unknown preset is refused when the parameters are read, before any node runs."""
        presets = PRESETS[self.name]
        if self.preset not in presets:
            raise ValueError(
                f"training.model.preset: model {self.name!r} has no preset {self.preset!r}; "
                f"choose one of {sorted(presets)}"
            )
        return self


def deep_merge(base: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """``overrides`` merged into a copy of ``base``; nested mappings merge, other values replace."""
    merged = copy.deepcopy(dict(base))
    for key, value in overrides.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


# Facts of the data side that the model configuration takes from there, with the parameter that sets them.
DATA_SIDE = {
    "patch_size": "patching.patch_size",
    "position_table_size": "graph_building.position_table_size",
    "feature_dim": "the encoder's embedding width (features pipeline)",
}


def model_config(
    spec: ModelSpec | Mapping[str, Any],
    n_genes: int,
    *,
    patch_size: int | None = None,
    position_table_size: int | None = None,
    feature_dim: int | None = None,
) -> BaseModel:
    """The validated configuration of the model ``spec`` names, for ``n_genes`` genes.

    ``patch_size``, ``position_table_size`` and ``feature_dim`` come from the data side
    (``patching``, ``graph_building``, the encoder's features) when given, for the models whose
    configuration has them; an override that sets them differently is an error.

    Raises:
        ValueError: an unknown preset, overrides that do not fit the model's configuration, or a
            data-side fact set in the overrides.
    """
    spec = ModelSpec.model_validate(spec)
    presets = PRESETS[spec.name]
    if spec.preset not in presets:
        raise ValueError(
            f"training.model.preset: model {spec.name!r} has no preset {spec.preset!r}; choose one of {sorted(presets)}"
        )
    values = deep_merge(presets[spec.preset], spec.overrides)
    values["n_genes"] = n_genes
    fields = MODELS[spec.name][1].model_fields
    data_side = {"patch_size": patch_size, "position_table_size": position_table_size, "feature_dim": feature_dim}
    for key, value in data_side.items():
        if value is None or key not in fields:
            continue
        if key in spec.overrides and spec.overrides[key] != value:
            raise ValueError(
                f"training.model.overrides.{key}={spec.overrides[key]} contradicts {DATA_SIDE[key]}={value}; "
                f"set {DATA_SIDE[key]} only"
            )
        values[key] = value
    return MODELS[spec.name][1].model_validate(values)


def build_model(
    spec: ModelSpec | Mapping[str, Any],
    n_genes: int,
    *,
    patch_size: int | None = None,
    position_table_size: int | None = None,
    feature_dim: int | None = None,
) -> SpotExpressionModel:
    """Build the model ``spec`` names (``{name, preset, overrides}``) for ``n_genes`` genes."""
    config = model_config(
        spec, n_genes, patch_size=patch_size, position_table_size=position_table_size, feature_dim=feature_dim
    )
    return MODELS[config.name][0](config)
