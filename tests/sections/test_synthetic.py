"""The SYNTHETIC demo data: deterministic, labelled as synthetic, and with a learnable signal."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
from sklearn.linear_model import Ridge

from thitogene_kedro.processing.normalisation import NormalisationParams, normalise_counts
from thitogene_kedro.processing.patches import PatchingParams, cut_patches
from thitogene_kedro.sections import synthetic
from thitogene_kedro.sections.images import SlideImage

SMALL = synthetic.SyntheticConfig(seed=3, n_patients=2, sections_per_patient=2, grid_size=10, pitch_px=100, n_genes=40)


def _digest(root) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_generation_is_deterministic_and_marked_synthetic(tmp_path):
    one = SMALL.model_copy(update={"n_patients": 1, "sections_per_patient": 1})  # one section is enough here
    synthetic.generate(tmp_path / "a", one)
    synthetic.generate(tmp_path / "b", one)
    assert _digest(tmp_path / "a") == _digest(tmp_path / "b")
    assert "SYNTHETIC" in (tmp_path / "a" / synthetic.MANIFEST).read_text()
    adata = synthetic.read_section(tmp_path / "a", "SYN_A1", one)
    assert adata.uns["source"] == "synthetic" and adata.uns["synthetic"]
    assert adata.obs_names.size > 30 and all(g.startswith("SYN") for g in adata.var_names)
    assert set(adata.obs["label"].dropna()) <= set(synthetic.DOMAINS)
    other = synthetic.SyntheticConfig(**{**one.model_dump(), "seed": 4})
    synthetic.generate(tmp_path / "a", other)  # another configuration replaces the data set
    assert _digest(tmp_path / "a") != _digest(tmp_path / "b")


def _features_and_targets(root, section):
    adata = synthetic.read_section(root, section, SMALL)
    with SlideImage(adata.uns["image"]["path"]) as image:
        patches, _ = cut_patches(image, adata.obsm["spatial"], PatchingParams(patch_size=64))
    flat = patches.reshape(len(patches), -1, 3).astype(np.float32)
    dark = (flat.mean(axis=2) < 110).mean(axis=1, keepdims=True)
    features = np.hstack([flat.mean(axis=1) / 255, flat.std(axis=1) / 255, dark])
    counts = adata.X.toarray()
    return features, normalise_counts(counts, counts.sum(axis=1), NormalisationParams())


def test_expression_is_learnable_from_the_image(tmp_path):
    """A linear model on simple patch colour features predicts a held-out section's expression."""
    synthetic.generate(tmp_path, SMALL)
    train = [_features_and_targets(tmp_path, s) for s in ("SYN_A1", "SYN_A2", "SYN_B1")]
    x_test, y_test = _features_and_targets(tmp_path, "SYN_B2")
    model = Ridge(alpha=1e-3).fit(np.vstack([x for x, _ in train]), np.vstack([y for _, y in train]))
    predicted = model.predict(x_test)
    variable = y_test.std(axis=0) > 0
    pcc = [np.corrcoef(predicted[:, g], y_test[:, g])[0, 1] for g in np.flatnonzero(variable)]
    shuffled = [
        np.corrcoef(np.random.default_rng(0).permutation(predicted[:, g]), y_test[:, g])[0, 1]
        for g in np.flatnonzero(variable)
    ]
    assert np.mean(pcc) > 0.3
    assert np.mean(pcc) > np.mean(shuffled) + 0.25


def test_unknown_section_is_refused(tmp_path):
    with pytest.raises(ValueError, match="not a synthetic section"):
        synthetic.read_section(tmp_path, "A1", SMALL)
