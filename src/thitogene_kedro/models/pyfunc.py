"""A trained model as an MLflow pyfunc: predict a section's expression from patches and positions.

``mlflow.pyfunc.load_model("models:/<name>@<alias>").predict({"patches": P, "positions": XY})``
with ``P`` uint8 ``(N, H, W, 3)`` crops centred on the spots and ``XY`` the ``(N, 2)`` integer array
coordinates returns a DataFrame of N spots × genes. A model on frozen-encoder features
(``thitogene_head``, ``linear_probe``) takes ``"features"`` ``(N, D)`` float32 instead of patches,
computed with the encoder and weights it was trained on (the inference pipeline does so from a
slide); ``"encoder_weights_sha256"`` in the input, when given, must be the model's. Over REST a large section is sent compactly as
``patches_b64`` (base64 of the raw uint8 bytes) with ``patches_shape``: 1.33 bytes a pixel value
instead of about 4 as JSON integers. Input the model cannot take is a :class:`ModelInputError`:
HTTP 400 with its one-line message. The spot graph is rebuilt from the positions
with the training settings (the model's ``inputs.graph``); an ``edge_index`` ``(2, E)`` entry overrides it.
Predictions are log-normalised expression, clamped at 0 (the network's raw output can dip slightly
below it); ``"clamp_at_zero": false`` in the input returns the raw output.
The logged model carries its configuration, gene list, weights and this package's code.
"""

from __future__ import annotations

import base64
import math
from typing import Any

import mlflow.pyfunc
import numpy as np
import pandas as pd
import torch
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import BAD_REQUEST

from thitogene_kedro.errors import ProjectError
from thitogene_kedro.models.batch import SectionExample, collate_sections
from thitogene_kedro.models.runtime import module_device, resolve_device
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
    def encoder(self) -> dict[str, Any] | None:
        """The identity of the frozen encoder whose features the model takes; None for models on patches."""
        return self.trained.inputs.encoder

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

    def input_example(self) -> dict[str, Any]:
        """A request of a few spots on a square grid (enough for the spot graph's k neighbours) in
        the compact REST form, grey patches: what a client sends, stored as the model's input example."""
        side = max(3, math.ceil(math.sqrt(self.graph.k + 2)))
        positions = [[x, y] for y in range(side) for x in range(side)]
        if self.encoder is not None:
            features = np.zeros((side * side, int(self.encoder["dim"])), dtype=np.float32)
            return {"features": features.tolist(), "positions": positions}
        size = self.trained.inputs.patch_size
        patches = np.full((side * side, size, size, 3), 200, dtype=np.uint8)
        return {"patches_b64": base64.b64encode(patches.tobytes()).decode(), "patches_shape": list(patches.shape),
                "positions": positions}  # fmt: skip

    def signature(self) -> Any:
        """The model's signature: its output, one float column per gene. The input (a dict of arrays
        with optional keys and a compact base64 form) is described by the docstring and the input
        example, not by an input schema: MLflow enforces a tensor input schema by keeping only the
        named arrays, which would drop ``patches_b64``, ``edge_index``, ``spot_ids`` and ``clamp_at_zero``."""
        from mlflow.models import ModelSignature  # noqa: PLC0415
        from mlflow.types import ColSpec, Schema  # noqa: PLC0415

        return ModelSignature(inputs=None, outputs=Schema([ColSpec("float", gene) for gene in self.genes]))

    def predict(self, context, model_input, params=None) -> pd.DataFrame:  # noqa: ARG002 - MLflow's signature
        """``{"patches": (N,H,W,3) uint8 (or ``patches_b64`` + ``patches_shape``; a model on features:
        "features": (N,D) float32[, "encoder_weights_sha256": str]), "positions": (N,2) int
        [, "edge_index": (2,E)][, "spot_ids": (N,)][, "clamp_at_zero": bool]}`` → N × genes
        (clamped at 0 unless ``clamp_at_zero`` is false: :func:`clamp_at_zero`).

        Raises:
            ModelInputError: input the model cannot take (served as HTTP 400 with this message).
        """
        patches = features = None
        if self.encoder is None:
            patches = given = model_patches(model_input, self.trained.inputs.patch_size)
        else:
            features = given = model_features(model_input, self.encoder)
        positions = model_positions(model_input)
        if len(positions) != len(given):
            kind = "patches" if features is None else "feature rows"
            raise ModelInputError(f"{len(given)} {kind} but {len(positions)} positions: give one position per spot")
        edges = model_input.get("edge_index")
        if edges is None:
            edges = knn_edge_index(positions, self.graph.k, self.graph.symmetric, self.graph.self_loops)
        example = SectionExample("input", patches, positions, np.asarray(edges, dtype=np.int64), features=features)
        model = self._built()
        device = module_device(model)
        with torch.no_grad():
            prediction = model(collate_sections([example]).to(device)).prediction[0].float().cpu().numpy()
        if bool(_scalar(model_input.get("clamp_at_zero", True))):
            prediction, _ = clamp_at_zero(prediction)
        index = model_input.get("spot_ids")
        return pd.DataFrame(prediction, columns=self.genes, index=None if index is None else list(np.ravel(index)))


def clamp_at_zero(values: np.ndarray) -> tuple[np.ndarray, int]:
    """``values`` with negatives set to 0 (log-normalised expression cannot be negative), and how many were."""
    negative = values < 0
    return np.where(negative, 0.0, values).astype(values.dtype), int(negative.sum())


class ModelInputError(MlflowException, ProjectError):
    """Input the model cannot take. MLflow's scoring server answers it with HTTP 400 and would put
    the whole request in front of the message (``Failed to predict data '...'``); the message is
    kept as first set, so the client reads the one line that says what is wrong."""

    def __init__(self, message: str) -> None:
        super().__init__(message, error_code=BAD_REQUEST)

    @property
    def message(self) -> str:
        return self._message

    @message.setter
    def message(self, value: str) -> None:
        if getattr(self, "_message", None) is None:
            self._message = value


def _scalar(value: Any) -> Any:
    return np.asarray(value).reshape(-1)[0] if np.ndim(value) else value


def model_patches(model_input: Any, patch_size: int) -> np.ndarray:
    """The ``(N, patch_size, patch_size, 3)`` uint8 patches of a request: ``patches`` (nested
    lists or an array) or, compactly, ``patches_b64`` (base64 of the raw uint8 bytes, C order)
    with ``patches_shape``."""
    if not isinstance(model_input, dict) or not ({"patches", "patches_b64"} & set(model_input)):
        raise ModelInputError(
            "model input must be a dict with 'patches' (N, H, W, 3) uint8 (or 'patches_b64' and 'patches_shape') "
            "and 'positions' (N, 2)"
        )
    if "patches_b64" in model_input:
        shape = tuple(int(v) for v in np.ravel(model_input.get("patches_shape", [])))
        raw = base64.b64decode(str(_scalar(model_input["patches_b64"])))
        if len(shape) != 4 or int(np.prod(shape)) != len(raw):
            raise ModelInputError(f"patches_b64 holds {len(raw)} bytes, which patches_shape {list(shape)} does not fit")
        patches = np.frombuffer(raw, dtype=np.uint8).reshape(shape)
    else:
        patches = np.asarray(model_input["patches"])
        if patches.dtype.kind not in "iuf" or (patches.size and (patches.min() < 0 or patches.max() > 255)):
            raise ModelInputError("patches must be uint8 RGB values in 0..255")
        patches = patches.astype(np.uint8)
    expected = (patch_size, patch_size, 3)
    if patches.ndim != 4 or patches.shape[1:] != expected:
        raise ModelInputError(
            f"the model expects {patch_size}×{patch_size} RGB patches, (N, {patch_size}, {patch_size}, 3), "
            f"got {patches.shape}"
        )
    return patches


def model_features(model_input: Any, encoder: dict[str, Any]) -> np.ndarray:
    """The ``(N, D)`` float32 features of a request to a model on frozen-encoder features, checked
    against the model's encoder (width, and weights hash where the request names one)."""
    name, dim, sha = str(encoder["name"]), int(encoder["dim"]), str(encoder["weights_sha256"])
    if not isinstance(model_input, dict) or "features" not in model_input:
        raise ModelInputError(
            f"this model predicts from {name} features: give 'features' (N, {dim}) float32, computed with the "
            f"weights it was trained on (sha256 {sha[:12]}…), and 'positions' (N, 2)"
        )
    given = model_input.get("encoder_weights_sha256")
    if given is not None and str(_scalar(given)) != sha:
        raise ModelInputError(
            f"the features were computed with weights sha256 {str(_scalar(given))[:12]}…, but the model was trained on "
            f"{name} weights sha256 {sha[:12]}…: compute them with the model's weights"
        )
    features = np.asarray(model_input["features"])
    if features.ndim != 2 or features.shape[1] != dim or features.dtype.kind not in "iuf":
        raise ModelInputError(f"features must be (N, {dim}) numbers ({name}), got {features.shape} {features.dtype}")
    if not np.isfinite(features).all():
        raise ModelInputError("features hold NaN or infinite values")
    return features.astype(np.float32)


def model_positions(model_input: dict[str, Any]) -> np.ndarray:
    """The ``(N, 2)`` integer array coordinates of a request."""
    if "positions" not in model_input:
        raise ModelInputError("model input has no 'positions': give the (N, 2) integer array coordinates")
    positions = np.asarray(model_input["positions"])
    if positions.ndim != 2 or positions.shape[1] != 2 or positions.dtype.kind not in "iu":
        raise ModelInputError(
            f"positions must be (N, 2) integer array coordinates, got {positions.shape} {positions.dtype}"
        )
    return positions.astype(np.int64)
