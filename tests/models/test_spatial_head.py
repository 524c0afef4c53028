"""THItoGene's spatial head and the linear probe on frozen features."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.decomposition import PCA
from sklearn.linear_model import Ridge
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from torch.utils.flop_counter import FlopCounterMode

from thitogene_kedro.models import SectionExample, build_model, collate_sections
from thitogene_kedro.models.linear_probe import LinearProbeConfig, choose_alpha


def feature_section(name: str, n: int, dim: int = 24, genes: int = 5, seed: int = 0) -> SectionExample:
    rng = np.random.default_rng(seed)
    features = rng.normal(size=(n, dim)).astype(np.float32)
    weights = rng.normal(size=(dim, genes))
    targets = (features @ weights + rng.normal(0, 0.5, (n, genes))).astype(np.float32)
    side = int(np.ceil(np.sqrt(n)))
    positions = np.stack([np.arange(n) % side, np.arange(n) // side], axis=1)
    edges = np.array([[i, (i + 1) % n] for i in range(n)]).T
    return SectionExample(name, None, positions, edges, targets=targets, features=features)


def test_the_spatial_head_predicts_from_features_and_padding_changes_nothing():
    torch.manual_seed(0)
    model = build_model({"name": "thitogene_head", "preset": "small"}, 5, feature_dim=24).eval()
    a, b = feature_section("a", 30), feature_section("b", 20, seed=1)
    with torch.no_grad():
        alone = model(collate_sections([b])).prediction[0]
        together = model(collate_sections([a, b])).prediction[1, :20]
    assert alone.shape == (20, 5)
    torch.testing.assert_close(alone, together, rtol=1e-4, atol=1e-5)
    for part in ("vit", "gat"):
        ablated = build_model({"name": "thitogene_head", "preset": "small",
                               "overrides": {"components": {part: False}}}, 5, feature_dim=24)  # fmt: skip
        assert not hasattr(ablated, part) and ablated(collate_sections([a])).prediction.shape == (1, 30, 5)
    with pytest.raises(ValueError, match="frozen-encoder features; this batch has patches only"):
        model(collate_sections([SectionExample("p", np.zeros((3, 8, 8, 3), np.uint8), np.zeros((3, 2)),
                                               np.zeros((2, 0)))]))  # fmt: skip


def test_the_light_head_is_thitogenes_structure_at_a_thirtieth_of_its_arithmetic_and_learns():
    section = feature_section("a", 100, dim=1024, genes=50)
    targets = torch.as_tensor(section.targets) / 32  # unit variance: the signal is 1,024 unit features
    batch = collate_sections([section])
    flops = {}
    for preset in ("paper_her2st", "light"):
        torch.manual_seed(0)
        model = build_model({"name": "thitogene_head", "preset": preset}, 50, feature_dim=1024)
        with FlopCounterMode(display=False) as counter:
            model(batch).prediction.sum().backward()
        flops[preset] = counter.get_total_flops()
    assert hasattr(model, "vit") and hasattr(model, "gat") and model.config.width == 22 * 16
    assert flops["paper_her2st"] > 25 * flops["light"]
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-3)
    losses = []
    for _ in range(60):
        optimiser.zero_grad()
        loss = torch.nn.functional.mse_loss(model(batch).prediction[0], targets)
        loss.backward()
        optimiser.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]


def test_the_probe_is_standardise_pca_ridge_fitted_on_the_training_sections():
    train = [feature_section(f"s{i}", 40, seed=i) for i in range(3)]
    probe = build_model({"name": "linear_probe", "overrides": {"pca_components": 8}}, 5, feature_dim=24)
    details = probe.fit_closed_form(train)
    x = np.concatenate([e.features for e in train]).astype(np.float64)
    y = np.concatenate([e.targets for e in train]).astype(np.float64)
    reference = make_pipeline(StandardScaler(), PCA(8, svd_solver="full"), Ridge(alpha=details["alpha"])).fit(x, y)
    test = feature_section("t", 25, seed=9)
    with torch.no_grad():
        ours = probe(collate_sections([test])).prediction[0].numpy()
    np.testing.assert_allclose(ours, reference.predict(test.features.astype(np.float64)), rtol=1e-3, atol=1e-3)
    assert details["alpha"] in LinearProbeConfig(n_genes=5, feature_dim=24).alphas and len(details["inner_cv_pcc"]) == 6


def test_alpha_is_chosen_on_the_training_sections_alone():
    train = [feature_section(f"s{i}", 40, seed=i) for i in range(3)]
    config = LinearProbeConfig(n_genes=5, feature_dim=24, pca_components=8, alphas=[1e-3, 1e6])
    alpha, scores = choose_alpha([(e.features, e.targets) for e in train], config)
    assert alpha == 1e-3 and scores[1e-3] > scores[1e6]  # a near-linear signal: little shrinkage wins
    assert choose_alpha([(train[0].features, train[0].targets)], config) == (config.default_alpha, {})


def test_features_and_patches_do_not_mix_in_a_batch():
    with pytest.raises(ValueError, match="exactly one of them"):
        SectionExample("x", None, np.zeros((2, 2)), np.zeros((2, 0)))
    patches = SectionExample("p", np.zeros((2, 8, 8, 3), np.uint8), np.zeros((2, 2)), np.zeros((2, 0)))
    with pytest.raises(ValueError, match="patch shape"):
        collate_sections([patches, feature_section("f", 2)])
