"""Figures of a run, drawn with matplotlib and returned as PIL images (saved as PNG through the catalog)."""

from __future__ import annotations

import io
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.collections import EllipseCollection  # noqa: E402
from matplotlib.colors import Normalize, to_hex  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
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
    """Mean ± SD over sections of the mean PCC, one bar per model or ablation (paper Figure 3).

    With one model, one bar would say nothing: the bars are then its held-out sections.
    """
    if scores["model"].nunique() == 1:
        per_section = scores.sort_values("pcc_mean")
        figure, axis = plt.subplots(figsize=(6.5, 0.9 + 0.35 * len(per_section)))
        axis.barh(range(len(per_section)), per_section["pcc_mean"], color="tab:green", alpha=0.8)
        axis.set_yticks(range(len(per_section)), per_section["section"].astype(str))
        axis.axvline(0, color="grey", linewidth=0.8)
        axis.set_xlabel("mean PCC over genes")
        axis.set_title(f"{scores['model'].iloc[0]}: held-out sections (one model; compare runs for Figure 3)")
        return to_image(figure)
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
    return _loss_figure(figure, axis, "Training curves per fold")


def _loss_figure(figure: plt.Figure, axis: plt.Axes, title: str) -> Image.Image:
    """The loss axes of the training-curve figures: epochs, log-scaled loss, legend; rendered."""
    axis.set_xlabel("epoch")
    axis.set_ylabel("training loss (MSE + model terms)")
    axis.set_yscale("log")
    axis.set_title(title)
    axis.legend(fontsize=7, ncol=2)
    return to_image(figure)


@dataclass(frozen=True)
class TissueView:
    """What spots are drawn over: the tissue image (or none), its pixels per full-resolution pixel,
    a spot's true diameter and the µm of one pixel (both full-resolution; µm unknown: None)."""

    image: np.ndarray | None
    image_scale: float
    spot_diameter_px: float
    um_per_px: float | None


def tissue_view(adata: Any, library: str | None = None) -> TissueView:
    """The view of one library of a spatial AnnData in the legacy layout (``sections.spatial_layout``):
    its hires image, scale factors and µm/px; without a library, no image and a spot half the median
    spacing of neighbouring spots across (legacy ST)."""
    libraries = adata.uns.get("spatial", {})
    if library is None and len(libraries) == 1:
        library = next(iter(libraries))
    if library in libraries:
        found = libraries[library]
        factors, mpp = found["scalefactors"], found.get("metadata", {}).get("mpp")
        return TissueView(
            found["images"]["hires"], float(factors["tissue_hires_scalef"]), float(factors["spot_diameter_fullres"]),
            float(mpp) if mpp else None,
        )  # fmt: skip
    from scipy.spatial import cKDTree  # noqa: PLC0415

    xy = np.asarray(adata.obsm["spatial"], dtype=np.float64)
    spacing = float(np.median(cKDTree(xy).query(xy, k=2)[0][:, 1])) if len(xy) > 1 else 1.0
    return TissueView(None, 1.0, 0.5 * spacing, None)


_SCALE_BAR_UM = (20, 50, 100, 200, 250, 500, 1000, 2000, 5000, 10000)


def _scale_bar(axis: plt.Axes, view: TissueView, width_px: float) -> None:
    """A µm scale bar about a fifth of the panel wide, bottom right (none where µm/px is unknown)."""
    from mpl_toolkits.axes_grid1.anchored_artists import AnchoredSizeBar  # noqa: PLC0415

    if not view.um_per_px:
        return
    target = 0.2 * width_px * view.um_per_px
    length = max([u for u in _SCALE_BAR_UM if u <= target] or [_SCALE_BAR_UM[0]])
    label = f"{length / 1000:g} mm" if length >= 1000 else f"{length} µm"
    bar = AnchoredSizeBar(
        axis.transData, length / view.um_per_px, label, "lower right", pad=0.4, borderpad=0.5, sep=3,
        frameon=True, size_vertical=max(1.0, 0.012 * width_px), fontproperties={"size": 8},
    )  # fmt: skip
    bar.patch.set_alpha(0.75)
    axis.add_artist(bar)


def spot_panel(axis: plt.Axes, xy: np.ndarray, view: TissueView, title: str, **colouring: Any) -> EllipseCollection:
    """Spots at their true diameter over the tissue, cropped to the spots, with a µm scale bar and
    no pixel ticks; ``colouring``: ``values`` with ``cmap``/``norm``, or ``colours`` (one per spot)."""
    xy = np.asarray(xy, dtype=np.float64)
    diameter = view.spot_diameter_px
    if view.image is not None:
        height, width = view.image.shape[:2]
        axis.imshow(view.image, extent=(0, width / view.image_scale, height / view.image_scale, 0))
    spots = EllipseCollection(  # a thin white rim keeps spots apart from the tissue under them
        diameter, diameter, 0, units="xy", offsets=xy, offset_transform=axis.transData,
        linewidths=0.5 if view.image is not None else 0, edgecolors="white",
    )  # fmt: skip
    if "values" in colouring:
        spots.set_array(np.asarray(colouring["values"], dtype=np.float64))
        spots.set_cmap(colouring.get("cmap", "viridis"))
        spots.set_norm(colouring["norm"])
    else:
        spots.set_facecolor(colouring["colours"])
    axis.add_collection(spots)
    margin = diameter * 1.5
    (x0, y0), (x1, y1) = xy.min(axis=0) - margin, xy.max(axis=0) + margin
    axis.set_xlim(x0, x1)
    axis.set_ylim(y1, y0)  # image orientation: y grows downwards
    axis.set_aspect("equal")
    axis.set_xticks([])
    axis.set_yticks([])
    _scale_bar(axis, view, x1 - x0)
    axis.set_title(title, fontsize=9)
    return spots


def colour_norm(*values: np.ndarray, percentiles: tuple[float, float] = (1.0, 99.0)) -> Normalize:
    """One colour scale over ``values``, from their low to their high percentile (outliers saturate)."""
    pooled = np.concatenate([np.asarray(v, dtype=np.float64).ravel() for v in values])
    pooled = pooled[np.isfinite(pooled)]
    low, high = np.percentile(pooled, percentiles) if pooled.size else (0.0, 1.0)
    return Normalize(float(low), float(high) if high > low else float(low) + 1e-6)


def expression_maps(
    section: str,
    adata: Any,
    pcc: Mapping[str, float],
    scale: str = "per_panel",
    percentiles: tuple[float, float] = (1.0, 99.0),
) -> Image.Image:
    """Observed (``layers['observed']``) vs predicted (``X``) expression of ``adata``'s genes over
    the tissue, one row per gene (paper Figure 4). ``scale``: ``shared`` (one colour scale per row,
    the pooled percentiles) or ``per_panel`` (each panel its own percentiles: PCC ignores scale)."""
    view = tissue_view(adata, section)
    genes = list(adata.var_names)
    figure, axes = plt.subplots(len(genes), 2, figsize=(9, 3.9 * len(genes)), squeeze=False, layout="constrained")
    xy = np.asarray(adata.obsm["spatial"])
    for row, gene in enumerate(genes):
        observed, predicted = (
            np.asarray(adata[:, gene].layers["observed"]).ravel(),
            np.asarray(adata[:, gene].X).ravel(),
        )
        shared = colour_norm(observed, predicted, percentiles=percentiles)
        for column, (name, values) in enumerate((("observed", observed), ("predicted", predicted))):
            norm = shared if scale == "shared" else colour_norm(values, percentiles=percentiles)
            title = f"{section} {gene}: {name}" + (f" (PCC {pcc[gene]:.2f})" if column else "")
            spots = spot_panel(axes[row, column], xy, view, title, values=values, norm=norm)
            if scale != "shared":
                figure.colorbar(spots, ax=axes[row, column], shrink=0.75, label="log-normalised expression")
        if scale == "shared":
            figure.colorbar(spots, ax=axes[row].tolist(), shrink=0.75, label="log-normalised expression")
    scale_note = "one colour scale per gene" if scale == "shared" else "each panel its own colour scale"
    figure.suptitle(f"{scale_note}, {percentiles[0]:g}–{percentiles[1]:g} percentiles", fontsize=8)
    return to_image(figure)


def category_colours(categories: list[str]) -> dict[str, str]:
    """A fixed colour per category (tab10, then tab20), so a domain keeps its colour in every panel."""
    palette = [to_hex(plt.cm.tab10(i)) for i in range(10)] + [to_hex(plt.cm.tab20(i)) for i in range(1, 20, 2)]
    return {c: palette[i % len(palette)] for i, c in enumerate(categories)}


def cluster_maps(section: str, adata: Any, panels: Mapping[str, str], categories: list[str]) -> Image.Image:
    """The annotation next to each clustering of one section (paper Figure 5): ``panels`` maps a title
    to an ``obs`` column of labels from ``categories`` (clusters matched to the annotation's names),
    each category in one colour throughout, one legend."""
    view = tissue_view(adata, section)
    colours = category_colours(categories)
    figure, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels) + 1.6, 4.6), squeeze=False,
                                layout="constrained")  # fmt: skip
    xy = np.asarray(adata.obsm["spatial"])
    for axis, (title, column) in zip(axes[0], panels.items(), strict=True):
        labels = adata.obs[column].astype(str).to_numpy()
        spot_panel(axis, xy, view, f"{section}: {title}", colours=[colours.get(v, "#bbbbbb") for v in labels])
    handles = [Line2D([], [], marker="o", linestyle="", color=colours[c], markersize=8) for c in categories]
    figure.legend(handles, categories, loc="outside right center", fontsize=8, title="domain", title_fontsize=8)
    return to_image(figure)


def prediction_maps(
    title: str, adata: Any, genes: list[str], percentiles: tuple[float, float] = (1.0, 99.0)
) -> Image.Image:
    """Predicted expression of ``genes`` over a slide (inference), one panel per gene, each on its
    own percentile colour scale."""
    view = tissue_view(adata)
    figure, axes = plt.subplots(1, len(genes), figsize=(4.6 * len(genes), 4.6), squeeze=False, layout="constrained")
    xy = np.asarray(adata.obsm["spatial"])
    for axis, gene in zip(axes[0], genes, strict=True):
        values = np.asarray(adata[:, gene].X).ravel()
        spots = spot_panel(
            axis, xy, view, f"{title}: {gene}", values=values, norm=colour_norm(values, percentiles=percentiles)
        )
        figure.colorbar(spots, ax=axis, shrink=0.75, label="predicted log-normalised expression")
    return to_image(figure)


def variant_maps(section: str, observed: Any, predicted: Mapping[str, Any], genes: list[str]) -> Image.Image:
    """Observed expression next to each model's held-out prediction of ``genes`` on one section
    (the paper's Figure 4): one row per gene, each panel its own 1–99 percentile scale, the
    variant's PCC in its title. ``observed``/``predicted[variant]``: spatial AnnData (held-out
    predictions, ``layers['observed']`` in ``observed``)."""
    from thitogene_kedro.metrics import pearson_per_gene  # noqa: PLC0415 - the scores' own PCC

    view = tissue_view(observed, section)
    columns = ["observed", *predicted]
    figure, axes = plt.subplots(len(genes), len(columns), figsize=(3.3 * len(columns), 3.4 * len(genes)),
                                squeeze=False, layout="constrained")  # fmt: skip
    xy = np.asarray(observed.obsm["spatial"])
    for row, gene in enumerate(genes):
        truth = np.asarray(observed[:, gene].layers["observed"]).ravel()
        for column, name in enumerate(columns):
            values = truth if name == "observed" else np.asarray(predicted[name][observed.obs_names, gene].X).ravel()
            title = (
                f"{gene}: observed"
                if name == "observed"
                else f"{name} (PCC {pearson_per_gene(values[:, None], truth[:, None])[0]:.2f})"
            )
            spot_panel(axes[row, column], xy, view, title, values=values, norm=colour_norm(values))
    figure.suptitle(f"{section}, held out: observed and predicted (each panel its own 1–99 percentile scale)",
                    fontsize=9)  # fmt: skip
    return to_image(figure)


def variant_curves(histories: Mapping[str, list[pd.DataFrame]]) -> Image.Image:
    """Training loss per epoch of each variant: the mean over its jobs (folds × seeds) and the band
    from the lowest to the highest job."""
    figure, axis = plt.subplots(figsize=(7, 4.2), layout="constrained")
    for index, (variant, frames) in enumerate(histories.items()):
        table = pd.concat([f.set_index("epoch")["train_loss"] for f in frames], axis=1)
        colour = plt.cm.tab10(index % 10)
        axis.plot(table.index, table.mean(axis=1), color=colour, label=f"{variant} ({len(frames)} runs)")
        axis.fill_between(table.index, table.min(axis=1), table.max(axis=1), color=colour, alpha=0.15, linewidth=0)
    return _loss_figure(figure, axis, "Training curves per variant: mean over folds and seeds, min–max band")
