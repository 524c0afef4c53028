"""Forward FLOPs equal those measured with the reference code on a 283-spot section (baselines-spec §3)."""

from __future__ import annotations

import pytest

from thitogene_kedro.models import build_model
from thitogene_kedro.models.summary import demo_section, forward_flops, main, parameter_counts


@pytest.mark.parametrize(
    ("name", "reference_gflops"),
    [
        ("thitogene", {"odconv2d": 0.34, "caps_layer": 21.1, "vit": 27.4, "gat": 10.3, "gene_head": 0.75}),
        ("histogene", {"patch_embedding": 21.8, "vit": 40.6, "gene_head": 0.45}),
        ("hist2st", {"patch_embedding": 0.68, "convmixer": 0.76, "transformer": 31.1, "gnn": 3.0, "jknet": 38.0}),
    ],
)
def test_forward_flops_match_the_reference_measurements(name, reference_gflops):
    model = build_model({"name": name}, 785)
    _, per_component, _ = forward_flops(model, demo_section(283, 785))
    for component, gflops in reference_gflops.items():
        assert per_component[component] / 1e9 == pytest.approx(gflops, rel=0.02, abs=0.01), component
    assert sum(parameter_counts(model).values()) == sum(p.numel() for p in model.parameters())


def test_summary_command_prints_the_tables(capsys):
    main(["--spots", "20", "--models", "histogene"])
    out = capsys.readouterr().out
    assert "| **total** | **106,648,337** |" in out
