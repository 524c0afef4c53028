"""THItoGene: paper shapes, ablation switches, the input step and device safety."""

from __future__ import annotations

import copy
import dataclasses

import numpy as np
import pytest
import torch

from tests.models.conftest import grid_section
from tests.models.test_odconv import reference_odconv
from thitogene_kedro.models import SectionExample, build_model, collate_sections
from thitogene_kedro.models.capsnet import CapsuleEncoder
from thitogene_kedro.models.gat import MultiHeadGAT
from thitogene_kedro.models.odconv import ODConv2d
from thitogene_kedro.models.transformer import SpotTransformer


def thitogene(preset: str = "small", n_genes: int = 16, **overrides):
    return build_model({"name": "thitogene", "preset": preset, "overrides": overrides}, n_genes)


def test_paper_configuration_predicts_every_spot_and_gene():
    torch.manual_seed(0)
    model = thitogene("paper_her2st", 785).eval()
    batch = collate_sections([grid_section(9, n_genes=785)])
    with torch.no_grad():
        assert model(batch).prediction.shape == (1, 9, 785)
        features = model.encode_patches(batch.patches[0])
    assert features.shape == (9, 20 * 64)  # 20 capsules × 64; with E_x, E_y the token is 1408


def test_paper_forward_creates_no_tensor_on_a_fixed_device():
    """On the meta device any CPU constant (the reference's routing ``torch.Tensor([64])``) would fail.

    The neighbour-list graph attention sizes its edge list from the data (``torch.unique``), which
    tensors without data cannot do; the dense formulation stands in for it here.
    """
    with torch.device("meta"):
        model = thitogene("paper_her2st", 785, gat={"implementation": "dense"})
    batch = collate_sections([grid_section(6, n_genes=785)]).to("meta")
    assert model(batch).prediction.shape == (1, 6, 785)


ABLATIONS = {
    "odconv": (ODConv2d, "odconv2d"),
    "capsnet": (CapsuleEncoder, "caps_layer"),
    "vit": (SpotTransformer, "vit"),
    "gat": (MultiHeadGAT, "gat"),
}


@pytest.mark.parametrize("component", sorted(ABLATIONS))
def test_each_ablation_switch_removes_what_it_names(component):
    module_type, attribute = ABLATIONS[component]
    full = thitogene()
    ablated = thitogene(components={component: False})
    assert any(isinstance(m, module_type) for m in full.modules()) and hasattr(full, attribute)
    assert not any(isinstance(m, module_type) for m in ablated.modules()) and not hasattr(ablated, attribute)
    for other, (other_type, _) in ABLATIONS.items():
        if other != component:
            assert any(isinstance(m, other_type) for m in ablated.modules())
    batch = collate_sections([grid_section(12)])
    assert ablated.eval()(batch).prediction.shape == (1, 12, 16)


def test_without_gat_a_spot_ignores_its_neighbours_and_without_vit_distant_spots():
    """With neither ViT nor GAT a spot's prediction depends on its own patch only."""
    torch.manual_seed(0)
    section = grid_section(12)
    changed_patches = section.patches.copy()
    changed_patches[5] = 255 - changed_patches[5]
    changed = SectionExample(**{**section.__dict__, "patches": changed_patches})
    model = thitogene(components={"vit": False, "gat": False}).eval()
    with torch.no_grad():
        delta = (model(collate_sections([changed])).prediction - model(collate_sections([section])).prediction)[0]
    assert set(torch.nonzero(delta.abs().amax(-1) > 1e-6).flatten().tolist()) == {5}


def test_input_scale_option_changes_the_output():
    batch = collate_sections([grid_section(8)])
    outputs = {}
    for scale in ("unit", "raw"):
        torch.manual_seed(0)
        outputs[scale] = thitogene(input={"scale": scale}).eval()(batch).prediction
    assert (outputs["unit"] - outputs["raw"]).abs().max() > 1e-3


def test_gat_options_change_the_output():
    batch = collate_sections([grid_section(20)])
    outputs = {}
    for axis, loops in (("neighbours", True), ("receivers", True), ("neighbours", False)):
        torch.manual_seed(0)
        outputs[axis, loops] = thitogene(gat={"softmax_axis": axis, "self_loops": loops}).eval()(batch).prediction
    standard = outputs["neighbours", True]
    assert (standard - outputs["receivers", True]).abs().max() > 1e-4
    assert (standard - outputs["neighbours", False]).abs().max() > 1e-4


def test_bad_inputs_are_named():
    model = thitogene().eval()
    section = grid_section(6)
    with pytest.raises(ValueError, match="112×112 patches"):
        model(collate_sections([grid_section(6, patch_size=64)]))
    far = SectionExample(**{**section.__dict__, "positions": section.positions + 70})
    with pytest.raises(ValueError, match="outside the position table 0..63"):
        model(collate_sections([far]))
    with pytest.raises(ValueError, match="section S: patches must be uint8"):
        SectionExample(**{**section.__dict__, "patches": section.patches.astype(np.float32)})


def odconv_gradients(model: torch.nn.Module, batch, dtype: torch.dtype) -> list[torch.Tensor]:
    """The ODConv parameters' gradients of one training loss, computed in ``dtype`` throughout."""
    model = copy.deepcopy(model).to(dtype)
    pixels = model.input_step.forward
    model.input_step.forward = lambda patches: pixels(patches).to(dtype)
    torch.manual_seed(5)  # the same dropout masks in each precision
    sum(model.loss_terms(batch, model(batch)).values()).backward()
    return [p.grad.double() for p in model.odconv2d.parameters()]


def test_odconv_gradients_carry_the_float32_error_of_the_reference_formulation(c3_window):
    """Against float64, the float32 ODConv gradients of a training step are as close as those of
    the reference's grouped-convolution ODConv (its layout computes the later layers channels-first)."""
    torch.manual_seed(0)
    model = thitogene("small", 785).train()
    batch = collate_sections([c3_window])  # real patches: on noise the layouts' errors are alike
    values = {f.name: getattr(batch, f.name) for f in dataclasses.fields(batch)}
    as_float64 = {k: v.double() for k, v in values.items() if torch.is_tensor(v) and v.is_floating_point()}
    exact = odconv_gradients(model, dataclasses.replace(batch, **as_float64), torch.float64)
    ours = odconv_gradients(model, batch, torch.float32)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(ODConv2d, "forward", reference_odconv)
        reference = odconv_gradients(model, batch, torch.float32)
    for e, o, r in zip(exact, ours, reference, strict=True):
        assert (o - e).norm() <= 1.5 * (r - e).norm()
