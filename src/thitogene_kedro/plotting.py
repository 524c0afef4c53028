"""Figures of a run, drawn with matplotlib and returned as PIL images (saved as PNG through the catalog)."""

from __future__ import annotations

import io
from collections.abc import Mapping

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from PIL import Image  # noqa: E402


def to_image(figure: plt.Figure) -> Image.Image:
    """Render and close a matplotlib figure."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    plt.close(figure)
    buffer.seek(0)
    return Image.open(buffer).convert("RGB")


def pcc_boxplot(scores: pd.DataFrame) -> Image.Image:
    """Per-section mean PCC per model, boxes with the sections as points (paper Figure 2)."""
    models = list(dict.fromkeys(scores["model"]))
    figure, axis = plt.subplots(figsize=(1.6 + 1.4 * len(models), 4.2))
    data = [scores.loc[scores["model"] == m, "pcc_mean"].to_numpy() for m in models]
    axis.boxplot(data, showfliers=False)
    rng = np.random.default_rng(0)
    for i, values in enumerate(data, start=1):
        axis.scatter(i + rng.uniform(-0.12, 0.12, len(values)), values, s=14, color="tab:blue", alpha=0.7, zorder=3)
    axis.set_xticks(range(1, len(models) + 1), [m.replace("{", "\n{") for m in models], rotation=20, ha="right")
    axis.axhline(0, color="grey", linewidth=0.8, linestyle=":")
    axis.set_ylabel("mean PCC over genes (per held-out section)")
    axis.set_title("Held-out sections: PCC per model")
    return to_image(figure)


def model_bars(scores: pd.DataFrame) -> Image.Image:
    """Mean ± SD over sections of the mean PCC, one bar per model or ablation (paper Figure 3)."""
    summary = scores.groupby("model", sort=False)["pcc_mean"].agg(["mean", "std", "count"]).sort_values("mean")
    figure, axis = plt.subplots(figsize=(6.5, 0.9 + 0.45 * len(summary)))
    axis.barh(range(len(summary)), summary["mean"], xerr=summary["std"].fillna(0), color="tab:green", alpha=0.8)
    axis.set_yticks(range(len(summary)), [f"{m} (n={n})" for m, n in zip(summary.index, summary["count"], strict=True)])
    axis.axvline(0, color="grey", linewidth=0.8)
    axis.set_xlabel("mean PCC over genes, mean ± SD over held-out sections")
    axis.set_title("Models and ablations under the same protocol")
    return to_image(figure)


def training_curves(histories: Mapping[str, pd.DataFrame]) -> Image.Image:
    """Training (and validation) loss per epoch, one line per fold."""
    figure, axis = plt.subplots(figsize=(6.5, 4))
    for index, (fold, history) in enumerate(sorted(histories.items())):
        colour = plt.cm.tab10(index % 10)
        axis.plot(history["epoch"], history["train_loss"], color=colour, label=f"{fold} train")
        if "validation_loss" in history and history["validation_loss"].notna().any():
            axis.plot(
                history["epoch"], history["validation_loss"], color=colour, linestyle="--", label=f"{fold} validation"
            )
    axis.set_xlabel("epoch")
    axis.set_ylabel("training loss (MSE + model terms)")
    axis.set_yscale("log")
    axis.set_title("Training curves per fold")
    axis.legend(fontsize=7, ncol=2)
    return to_image(figure)


def _tissue_axis(axis: plt.Axes, image: np.ndarray | None, title: str) -> None:
    """Tissue thumbnail underneath (or image orientation without one), title and pixel-unit labels."""
    if image is not None:
        axis.imshow(image)
    else:
        axis.invert_yaxis()
        axis.set_aspect("equal")
    unit = "thumbnail pixels" if image is not None else "full-resolution pixels; no image"
    axis.set_title(title, fontsize=9)
    axis.set_xlabel(f"x ({unit})")
    axis.set_ylabel(f"y ({unit})")


def spatial_maps(
    section: str,
    spatial: np.ndarray,
    observed: pd.DataFrame,
    predicted: pd.DataFrame,
    pcc: Mapping[str, float],
    tissue: tuple[np.ndarray | None, float] = (None, 1.0),
) -> Image.Image:
    """Observed vs predicted expression of some genes on the tissue (paper Figure 4).

    ``tissue``: the thumbnail under the spots and its scale to full-resolution pixels.

    One row per gene; both panels of a row share one colour scale.
    """
    image, scale = tissue
    genes = list(observed.columns)
    figure, axes = plt.subplots(len(genes), 2, figsize=(9, 3.8 * len(genes)), squeeze=False, layout="constrained")
    xy = np.asarray(spatial) * scale
    for row, gene in enumerate(genes):
        low = float(min(observed[gene].min(), predicted[gene].min()))
        high = float(max(observed[gene].max(), predicted[gene].max()))
        for column, (title, values) in enumerate((("observed", observed[gene]), ("predicted", predicted[gene]))):
            axis = axes[row, column]
            _tissue_axis(axis, image, f"{section} {gene}: {title}" + (f" (PCC {pcc[gene]:.2f})" if column else ""))
            points = axis.scatter(xy[:, 0], xy[:, 1], c=values, s=18, cmap="viridis", vmin=low, vmax=high, alpha=0.85)
        figure.colorbar(points, ax=axes[row].tolist(), shrink=0.8, label="log-normalised expression")
    return to_image(figure)


def cluster_maps(
    section: str, spatial: np.ndarray, panels: Mapping[str, np.ndarray], image: np.ndarray | None, scale: float
) -> Image.Image:
    """The annotation next to each clustering of one section (paper Figure 5); categorical colours."""
    figure, axes = plt.subplots(1, len(panels), figsize=(4.4 * len(panels), 4.4), squeeze=False, layout="constrained")
    xy = np.asarray(spatial) * scale
    for axis, (title, labels) in zip(axes[0], panels.items(), strict=True):
        _tissue_axis(axis, image, f"{section}: {title}")
        categories = sorted(pd.unique(pd.Series(labels).astype(str)))
        for index, category in enumerate(categories):
            chosen = np.asarray(pd.Series(labels).astype(str)) == category
            axis.scatter(xy[chosen, 0], xy[chosen, 1], s=16, color=plt.cm.tab10(index % 10), label=category)
        axis.legend(fontsize=6, loc="lower left", framealpha=0.7)
    return to_image(figure)


def prediction_maps(
    title: str, spatial: np.ndarray, values: pd.DataFrame, image: np.ndarray | None, scale: float
) -> Image.Image:
    """Predicted expression of some genes over a slide, one panel per gene (inference)."""
    genes = list(values.columns)
    figure, axes = plt.subplots(1, len(genes), figsize=(4.6 * len(genes), 4.4), squeeze=False, layout="constrained")
    xy = np.asarray(spatial) * scale
    for axis, gene in zip(axes[0], genes, strict=True):
        _tissue_axis(axis, image, f"{title}: {gene}")
        points = axis.scatter(xy[:, 0], xy[:, 1], c=values[gene], s=14, cmap="viridis", alpha=0.85)
        figure.colorbar(points, ax=axis, shrink=0.8, label="predicted log-normalised expression")
    return to_image(figure)
