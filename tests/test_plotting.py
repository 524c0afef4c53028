"""Every figure renders to a non-empty image with content."""

from __future__ import annotations

import numpy as np
import pandas as pd

from thitogene_kedro import plotting as figures


def has_content(image) -> bool:
    pixels = np.asarray(image)
    return image.width > 200 and image.height > 150 and pixels.std() > 10


def test_model_figures():
    scores = pd.DataFrame({"model": ["a"] * 4 + ["b"] * 4, "pcc_mean": [0.1, 0.2, 0.3, 0.2, 0.3, 0.4, 0.35, 0.5]})
    assert has_content(figures.pcc_boxplot(scores)) and has_content(figures.model_bars(scores))


def test_training_curves():
    history = pd.DataFrame({"epoch": [1, 2, 3], "train_loss": [1.0, 0.5, 0.3], "validation_loss": [1.1, 0.7, 0.6]})
    assert has_content(figures.training_curves({"fold_A": history, "fold_B": history.assign(validation_loss=np.nan)}))


def test_maps_with_and_without_a_tissue_image():
    rng = np.random.default_rng(0)
    spatial = rng.uniform(0, 400, (30, 2))
    observed = pd.DataFrame({"G1": rng.random(30), "G2": rng.random(30)})
    image = np.full((200, 200, 3), 230, dtype=np.uint8)
    for picture in (image, None):
        assert has_content(
            figures.spatial_maps("S", spatial, observed, observed * 0.5, {"G1": 0.5, "G2": 0.1}, (picture, 0.5))
        )
        panels = {"annotation": np.repeat(["a", "b", "c"], 10), "observed clusters": np.tile([0, 1, 2], 10)}
        assert has_content(figures.cluster_maps("S", spatial, panels, picture, 0.5))
