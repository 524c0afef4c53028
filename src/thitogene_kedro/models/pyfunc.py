"""A trained model as an MLflow pyfunc: predict a section's expression from patches and positions.

``mlflow.pyfunc.load_model("models:/<name>@<alias>").predict({"patches": P, "positions": XY})``
with ``P`` uint8 ``(N, H, W, 3)`` crops centred on the spots and ``XY`` the ``(N, 2)`` integer array
coordinates returns a DataFrame of N spots × genes. The spot graph is rebuilt from the positions
with the training settings (the model's ``inputs.graph``); an ``edge_index`` ``(2, E)`` entry overrides it.
The logged model carries its configuration, gene list, weights and this package's code.
"""

from __future__ import annotations

from typing import Any

import mlflow.pyfunc
import numpy as np
import pandas as pd
import torch

from thitogene_kedro.models.batch import SectionExample, collate_sections
from thitogene_kedro.models.runtime import resolve_device
from thitogene_kedro.processing.spot_graphs import knn_edge_index
from thitogene_kedro.training.artefacts import TrainedModel


class SpotExpressionPredictor(mlflow.pyfunc.PythonModel):
    """Weights, configuration and genes of one trained model, with a section-level ``predict``."""

    # The input is a dict of arrays, which MLflow's type-hint validation cannot describe: opted out
    # (MLflow's own switch), so it neither wraps ``predict`` nor warns about missing type hints.
    _skip_type_hint_validation = True

    def __init__(self, trained: TrainedModel, registered_name: str) -> None:
        self.trained = trained
        self.registered_name = registered_name
        self._model = None

    @property
    def genes(self) -> list[str]:
        return list(self.trained.genes)

    @property
    def graph(self):
        """The spot-graph settings the model was trained with."""
        return self.trained.inputs.graph

    def _built(self) -> torch.nn.Module:
        if self._model is None:
            self._model = self.trained.build().to(resolve_device("auto"))
        return self._model

    def load_context(self, context) -> None:  # noqa: ARG002 - MLflow's signature
        self._built()

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_model": None}

    def predict(self, context, model_input, params=None) -> pd.DataFrame:  # noqa: ARG002 - MLflow's signature
        """``{"patches": (N,H,W,3) uint8, "positions": (N,2) int[, "edge_index": (2,E)]}`` → N × genes."""
        if not isinstance(model_input, dict) or not {"patches", "positions"} <= set(model_input):
            raise ValueError("model input must be a dict with 'patches' (N, H, W, 3) uint8 and 'positions' (N, 2)")
        patches = np.asarray(model_input["patches"], dtype=np.uint8)
        positions = np.asarray(model_input["positions"], dtype=np.int64)
        edges = model_input.get("edge_index")
        if edges is None:
            edges = knn_edge_index(positions, self.graph.k, self.graph.symmetric, self.graph.self_loops)
        example = SectionExample("input", patches, positions, np.asarray(edges, dtype=np.int64))
        model = self._built()
        device = next(model.parameters()).device
        with torch.no_grad():
            prediction = model(collate_sections([example]).to(device)).prediction[0].float().cpu().numpy()
        index = model_input.get("spot_ids")
        return pd.DataFrame(prediction, columns=self.genes, index=None if index is None else list(index))
