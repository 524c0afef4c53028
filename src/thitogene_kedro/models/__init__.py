"""THItoGene, its ablations and the HisToGene and Hist2ST baselines behind one interface.

``build_model({"name": ..., "preset": ..., "overrides": {...}}, n_genes)`` returns a
:class:`SpotExpressionModel`; ``model(batch)`` gives a :class:`ModelOutput` and
``model.loss_terms(batch, output)`` the named loss terms with their sum under ``"loss"``.
"""

from thitogene_kedro.models.base import ModelOutput, SpotExpressionModel
from thitogene_kedro.models.batch import SectionBatch, SectionExample, collate_sections, examples_on
from thitogene_kedro.models.registry import MODELS, PRESETS, ModelSpec, build_model, model_config
from thitogene_kedro.models.runtime import autocast, resolve_device

__all__ = [
    "MODELS",
    "PRESETS",
    "ModelOutput",
    "ModelSpec",
    "SectionBatch",
    "SectionExample",
    "SpotExpressionModel",
    "autocast",
    "build_model",
    "collate_sections",
    "examples_on",
    "model_config",
    "resolve_device",
]
