"""Hist2ST: its loss terms, the graph pruning, the isolated-spot guard and the distillation options."""

from __future__ import annotations

import pytest
import torch

from tests.models.conftest import grid_section
from thitogene_kedro.models import SectionExample, build_model, collate_sections


def hist2st(**overrides):
    return build_model({"name": "hist2st", "preset": "small", "overrides": overrides}, 16)


def test_training_loss_is_mse_plus_weighted_zinb_and_distillation():
    torch.manual_seed(0)
    model = hist2st().train()
    batch = collate_sections([grid_section(10)])
    terms = model.loss_terms(batch, model(batch))
    assert set(terms) == {"mse", "zinb", "distillation", "loss"}
    expected = terms["mse"] + 0.25 * terms["zinb"] + 0.5 * terms["distillation"]
    torch.testing.assert_close(terms["loss"], expected)
    model.eval()
    with torch.no_grad():
        assert set(model.loss_terms(batch, model(batch))) == {"mse", "zinb", "loss"}  # no augmented passes


def test_zinb_needs_counts():
    model = hist2st().eval()
    section = grid_section(8)
    batch = collate_sections([SectionExample(**{**section.__dict__, "counts": None})])
    with pytest.raises(ValueError, match="needs raw counts"):
        model.loss_terms(batch, model(batch))


@pytest.mark.parametrize(("stop_gradient", "coef_learns"), [(False, True), (True, False)])
def test_distillation_stop_gradient_option(stop_gradient, coef_learns):
    """The reference lets gradients through the teacher (so ``coef`` learns); stop_gradient blocks them."""
    torch.manual_seed(0)
    model = hist2st(zinb_weight=0.0, distillation={"stop_gradient": stop_gradient}).train()
    batch = collate_sections([grid_section(10)])
    model.loss_terms(batch, model(batch))["loss"].backward()
    coef_grad = sum(float(p.grad.abs().sum()) for p in model.coef.parameters() if p.grad is not None)
    assert (coef_grad > 0) == coef_learns


def test_neighbours_beyond_the_distance_are_pruned():
    model = hist2st(max_neighbour_distance=1.0)
    batch = collate_sections([grid_section(12, side=12)])  # one row of 12: 4-NN reaches 2 away
    pruned = model.graph(batch)
    assert batch.adjacency.sum() == 48 and pruned.sum() == 22  # only the ±1 neighbours survive
    assert torch.equal(hist2st(max_neighbour_distance=None).graph(batch), batch.adjacency)


def test_a_spot_without_neighbours_does_not_poison_the_section():
    """The reference gives 0/0 = NaN for such a spot, which spreads to every spot (spec §2.7-3)."""
    torch.manual_seed(0)
    section = grid_section(10)
    edges = section.edge_index[:, section.edge_index[0] != 4]  # spot 4 lists nobody
    batch = collate_sections([SectionExample(**{**section.__dict__, "edge_index": edges})])
    assert torch.isfinite(hist2st().eval()(batch).prediction).all()
