"""Parameter counts of the paper configurations, presets and the one-entry configuration."""

from __future__ import annotations

import pytest
import torch
from pydantic import ValidationError

from thitogene_kedro.models import PRESETS, build_model, model_config
from thitogene_kedro.models.registry import deep_merge


def n_parameters(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def meta_model(name: str, preset: str, n_genes: int, overrides: dict | None = None):
    with torch.device("meta"):  # shapes and counts without allocating 100 M parameters
        return build_model({"name": name, "preset": preset, "overrides": overrides or {}}, n_genes)


@pytest.mark.parametrize(
    ("name", "preset", "n_genes", "expected"),
    [
        ("thitogene", "paper_her2st", 785, 63_586_712),
        ("thitogene", "paper_cscc", 171, 109_136_690),
        ("thitogene", "reference_her2st", 785, 63_586_712),
        ("histogene", "paper_her2st", 785, 106_648_337),
        ("hist2st", "paper_her2st", 785, 75_789_833),
    ],
)
def test_paper_configurations_have_the_reference_parameter_counts(name, preset, n_genes, expected):
    assert n_parameters(meta_model(name, preset, n_genes)) == expected


def test_thitogene_components_have_the_reference_counts():
    model = meta_model("thitogene", "paper_her2st", 785)
    counts = {name: n_parameters(child) for name, child in model.named_children()}
    assert counts == {
        "input_step": 0,
        "odconv2d": 3_815,
        "caps_layer": 317_344,
        "position": 2 * 4_096,
        "vit": 46_179_328,
        "gat": 15_746_048,
        "gene_head": 1_331_985,
    }


def test_hist2st_prediction_path_count():
    model = meta_model("hist2st", "paper_her2st", 785)
    auxiliary = n_parameters(model.zinb) + n_parameters(model.coef)
    assert n_parameters(model) - auxiliary == 72_325_333
    assert n_parameters(model.jknet) == 16_793_600
    assert n_parameters(model.transformer) == 50_388_992


@pytest.mark.parametrize("name", ["hist2st", "histogene", "thitogene"])
@pytest.mark.parametrize("preset", ["paper_her2st", "paper_cscc", "reference_her2st", "reference_cscc", "small"])
def test_every_preset_builds(name, preset):
    model = meta_model(name, preset, 50)
    assert model.n_genes == 50 and model.model_name == name


@pytest.mark.parametrize(
    ("name", "preset"), [(name, preset) for name in ("thitogene_head", "linear_probe") for preset in PRESETS[name]]
)
def test_every_preset_of_the_models_on_features_builds(name, preset):
    model = build_model({"name": name, "preset": preset}, 50, feature_dim=32)
    assert model.n_genes == 50 and model.model_name == name and model.input_kind == "features"


def test_overrides_merge_into_the_preset():
    config = model_config({"name": "thitogene", "preset": "reference_her2st", "overrides": {"vit": {"depth": 2}}}, 10)
    assert config.vit.depth == 2 and config.vit.heads == 16  # merged, not replaced
    assert config.gat.softmax_axis == "receivers" and config.input.scale == "raw"


def test_paper_preset_defaults_are_the_correct_behaviours():
    config = model_config({"name": "thitogene"}, 785)
    assert (config.gat.softmax_axis, config.gat.self_loops, config.input.scale) == ("neighbours", True, "unit")


def test_unknown_preset_and_bad_overrides_are_named():
    with pytest.raises(ValueError, match="no preset 'tiny'.*small"):
        model_config({"name": "thitogene", "preset": "tiny"}, 10)
    with pytest.raises(ValidationError, match="depht"):
        model_config({"name": "thitogene", "overrides": {"vit": {"depht": 2}}}, 10)
    with pytest.raises(ValidationError, match="softmax_axis"):
        model_config({"name": "thitogene", "overrides": {"gat": {"softmax_axis": "rows"}}}, 10)
    with pytest.raises(ValidationError, match="name"):
        model_config({"name": "stnet"}, 10)


def test_deep_merge_does_not_touch_its_inputs():
    base = {"a": {"b": 1, "c": [1]}}
    merged = deep_merge(base, {"a": {"b": 2}})
    merged["a"]["c"].append(2)
    assert base == {"a": {"b": 1, "c": [1]}} and merged["a"]["b"] == 2
