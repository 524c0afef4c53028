"""The linear probe on frozen features: standardise → PCA → ridge, as HEST-Benchmark's baseline.

Fitted in closed form on the training sections only (scaling, PCA and the ridge alpha), with the
alpha chosen by leave-one-section-out CV *within* the training sections, by the mean per-section
PCC (the evaluation's own score). A fold with one training section cannot be split by section:
it takes ``default_alpha``, logged. The fitted transform is kept as buffers, so the probe saves,
registers and predicts like every other model (``model(batch)``).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import torch
from pydantic import Field

from thitogene_kedro.metrics import pearson_per_gene
from thitogene_kedro.models.base import ModelOutput, SpotExpressionModel, StrictConfig
from thitogene_kedro.models.batch import SectionBatch, SectionExample

logger = logging.getLogger(__name__)


class LinearProbeConfig(StrictConfig):
    name: Literal["linear_probe"] = "linear_probe"
    n_genes: int = Field(ge=1)
    feature_dim: int = Field(ge=1)
    pca_components: int = Field(256, ge=1)
    alphas: list[float] = Field(default_factory=lambda: [0.1, 1.0, 10.0, 100.0, 1000.0, 10000.0], min_length=1)
    default_alpha: float = Field(100.0, gt=0)


def _fit_transform(features: np.ndarray, targets: np.ndarray, k: int) -> dict[str, np.ndarray]:
    """Standardisation and PCA (``k`` components at most) fitted on ``features``."""
    from sklearn.decomposition import PCA  # noqa: PLC0415 - scikit-learn on demand

    mean = features.mean(axis=0)
    scale = features.std(axis=0)
    scale[scale == 0] = 1.0
    standardised = (features - mean) / scale
    n = min(k, *standardised.shape)
    pca = PCA(n_components=n, svd_solver="full").fit(standardised)
    components = np.zeros((k, features.shape[1]))
    components[:n] = pca.components_
    scores = (standardised - pca.mean_) @ components.T
    return {"mean": mean + pca.mean_ * scale, "scale": scale, "components": components, "scores": scores,
            "target_mean": targets.mean(axis=0)}  # fmt: skip


def _ridge(scores: np.ndarray, centred_targets: np.ndarray, alpha: float) -> np.ndarray:
    """Ridge coefficients ``(G, k)`` on centred PCA scores (no intercept: both are centred)."""
    gram = scores.T @ scores + alpha * np.eye(scores.shape[1])
    return np.linalg.solve(gram, scores.T @ centred_targets).T


def choose_alpha(sections: Sequence[tuple[np.ndarray, np.ndarray]], config: LinearProbeConfig) -> tuple[float, dict]:
    """The alpha with the highest mean per-section PCC, leave-one-section-out over ``sections``
    (``(features, targets)`` of the training sections), and the mean PCC of each alpha."""
    if len(sections) < 2:
        logger.info("linear probe: one training section, no section to hold out; alpha = %s", config.default_alpha)
        return config.default_alpha, {}
    scores = {alpha: [] for alpha in config.alphas}
    for held in range(len(sections)):
        rest = [s for i, s in enumerate(sections) if i != held]
        x, y = np.concatenate([s[0] for s in rest]), np.concatenate([s[1] for s in rest])
        fitted = _fit_transform(x, y, config.pca_components)
        test_x, test_y = sections[held]
        test_scores = ((test_x - fitted["mean"]) / fitted["scale"]) @ fitted["components"].T
        for alpha in config.alphas:
            coef = _ridge(fitted["scores"], y - fitted["target_mean"], alpha)
            prediction = test_scores @ coef.T + fitted["target_mean"]
            scores[alpha].append(float(np.nanmean(pearson_per_gene(prediction, test_y))))
    means = {alpha: float(np.mean(values)) for alpha, values in scores.items()}
    best = max(means, key=lambda a: (means[a], -a))
    logger.info("linear probe: alpha %s by leave-one-section-out PCC over %d training sections (%s)", best,
                len(sections), ", ".join(f"{a:g}: {m:.3f}" for a, m in means.items()))  # fmt: skip
    return best, means


class LinearProbe(SpotExpressionModel):
    """Standardise + PCA + ridge on frozen features (module docstring); fitted by :meth:`fit_closed_form`."""

    model_name = "linear_probe"
    input_kind = "features"
    fits_in_closed_form = True

    def __init__(self, config: LinearProbeConfig) -> None:
        super().__init__(config.n_genes)
        self.config = c = config
        self.register_buffer("mean", torch.zeros(c.feature_dim))
        self.register_buffer("scale", torch.ones(c.feature_dim))
        self.register_buffer("components", torch.zeros(c.pca_components, c.feature_dim))
        self.register_buffer("coef", torch.zeros(c.n_genes, c.pca_components))
        self.register_buffer("intercept", torch.zeros(c.n_genes))
        self.register_buffer("alpha", torch.tensor(float("nan")))

    def fit_closed_form(self, train: Sequence[SectionExample]) -> dict[str, Any]:
        """Fit on the training sections' features and targets; returns the chosen alpha and the CV scores."""
        sections = [(np.asarray(e.features, dtype=np.float64), np.asarray(e.targets, dtype=np.float64)) for e in train]
        alpha, cv = choose_alpha(sections, self.config)
        x, y = np.concatenate([s[0] for s in sections]), np.concatenate([s[1] for s in sections])
        fitted = _fit_transform(x, y, self.config.pca_components)
        coef = _ridge(fitted["scores"], y - fitted["target_mean"], alpha)
        values = {"mean": fitted["mean"], "scale": fitted["scale"], "components": fitted["components"], "coef": coef,
                  "intercept": fitted["target_mean"], "alpha": np.asarray(alpha)}  # fmt: skip
        for name, value in values.items():
            getattr(self, name).copy_(torch.as_tensor(value, dtype=torch.float32))
        return {"alpha": alpha, "inner_cv_pcc": cv}

    def forward(self, batch: SectionBatch) -> ModelOutput:
        if batch.features is None:
            raise ValueError("linear_probe predicts from frozen-encoder features; this batch has patches only")
        scores = ((batch.features.float() - self.mean) / self.scale) @ self.components.T
        prediction = scores @ self.coef.T + self.intercept
        return ModelOutput(prediction=prediction.masked_fill(~batch.mask[..., None], 0.0))
