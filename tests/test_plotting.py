"""Figures: spots at their true diameter over the tissue, cropped, with a µm scale bar; colour scales."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
import pytest

from thitogene_kedro import plotting as figures
from thitogene_kedro.sections.spatial_layout import spatial_library


class Picture:
    """A slide of one colour, shrunk as SlideImage.thumbnail shrinks."""

    def __init__(self, width: int, height: int):
        self.width, self.height = width, height

    def thumbnail(self, max_px: int) -> tuple[np.ndarray, float]:
        scale = min(1.0, max_px / max(self.width, self.height))
        shape = (round(self.height * scale), round(self.width * scale), 3)
        return np.full(shape, (200, 120, 200), dtype=np.uint8), scale


def has_content(image) -> bool:
    pixels = np.asarray(image)
    return image.width > 200 and image.height > 150 and pixels.std() > 10


def spatial_predictions(with_image: bool = True) -> ad.AnnData:
    """30 spots 100 px apart in the middle of a 4000 px slide, observed and predicted for two genes."""
    rng = np.random.default_rng(0)
    xy = np.stack(np.meshgrid(np.arange(6), np.arange(5)), -1).reshape(-1, 2) * 100.0 + 1500
    observed = rng.random((30, 2)).astype(np.float32)
    adata = ad.AnnData(X=observed * 0.2 + 1, layers={"observed": observed}, obsm={"spatial": xy})
    adata.var_names = ["G1", "G2"]
    if with_image:  # 50 px spots at 2 µm/px: 100 µm
        adata.uns["spatial"] = {"S": spatial_library(Picture(4000, 3000), 50.0, {"mpp": 2.0})}
    return adata


def test_model_figures():
    scores = pd.DataFrame({"model": ["a"] * 4 + ["b"] * 4, "pcc_mean": [0.1, 0.2, 0.3, 0.2, 0.3, 0.4, 0.35, 0.5]})
    assert has_content(figures.pcc_boxplot(scores)) and has_content(figures.model_bars(scores))
    one = scores[scores["model"] == "a"].assign(section=list("ABCD"))
    assert has_content(figures.model_bars(one))  # one model: its sections, not one bar


def test_training_curves():
    history = pd.DataFrame({"epoch": [1, 2, 3], "train_loss": [1.0, 0.5, 0.3], "validation_loss": [1.1, 0.7, 0.6]})
    assert has_content(figures.training_curves({"fold_A": history, "fold_B": history.assign(validation_loss=np.nan)}))


def test_a_panel_draws_true_size_spots_cropped_to_them_with_a_micron_scale_bar_and_no_ticks():
    import matplotlib.pyplot as plt  # noqa: PLC0415
    from mpl_toolkits.axes_grid1.anchored_artists import AnchoredSizeBar  # noqa: PLC0415

    adata = spatial_predictions()
    view = figures.tissue_view(adata, "S")
    assert view.spot_diameter_px == 50 and view.um_per_px == 2.0 and max(view.image.shape[:2]) == 2000
    figure, axis = plt.subplots()
    spots = figures.spot_panel(axis, adata.obsm["spatial"], view, "t", values=adata.X[:, 0],
                               norm=figures.colour_norm(adata.X[:, 0]))  # fmt: skip
    assert np.allclose(spots.get_widths(), 50) or np.allclose(spots._widths * 2, 50)  # diameter in data units
    x0, x1 = axis.get_xlim()
    assert (x0, x1) == (1500 - 75, 2000 + 75) and axis.get_ylim() == (1900 + 75, 1500 - 75)  # cropped, y down
    assert list(axis.get_xticks()) == [] and list(axis.get_yticks()) == []
    (bar,) = [a for a in axis.artists if isinstance(a, AnchoredSizeBar)]
    assert bar.txt_label.get_text() == "250 µm"  # the largest round length ≤ a fifth of the 1300 µm panel
    extent = axis.images[0].get_extent()
    assert np.allclose(extent, (0, 4000, 3000, 0))  # the image placed in full-resolution pixels
    plt.close(figure)


def test_colour_scales_percentiles_and_per_panel_or_shared():
    values = np.concatenate([np.linspace(0, 1, 99), [100.0]])
    norm = figures.colour_norm(values, percentiles=(0, 99))
    assert norm.vmin == 0 and norm.vmax == pytest.approx(np.percentile(values, 99))  # the outlier saturates
    adata = spatial_predictions()
    for scale in ("per_panel", "shared"):
        assert has_content(figures.expression_maps("S", adata, {"G1": 0.5, "G2": 0.1}, scale))


def test_maps_without_a_tissue_image_still_draw_the_spots():
    adata = spatial_predictions(with_image=False)
    view = figures.tissue_view(adata)
    assert view.image is None and view.um_per_px is None and view.spot_diameter_px == 50  # half the spacing
    assert has_content(figures.expression_maps("S", adata, {"G1": 0.5, "G2": 0.1}))
    assert has_content(figures.prediction_maps("model v1", adata, ["G1", "G2"]))


def test_cluster_maps_keep_one_colour_per_domain():
    adata = spatial_predictions()
    labels = np.repeat(["a", "b", "c"], 10)
    adata.obs["annotation"] = pd.Categorical(labels)
    adata.obs["observed_clusters"] = pd.Categorical(np.roll(labels, 3), categories=["a", "b", "c"])
    colours = figures.category_colours(["a", "b", "c"])
    assert len(set(colours.values())) == 3 and colours == figures.category_colours(["a", "b", "c"])
    panels = {"annotation": "annotation", "observed clusters (ARI 0.50)": "observed_clusters"}
    assert has_content(figures.cluster_maps("S", adata, panels, ["a", "b", "c"]))
