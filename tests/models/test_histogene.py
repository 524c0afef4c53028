"""HisToGene: the flattened channel-last patch embedding and the additive position code."""

from __future__ import annotations

import torch

from tests.models.conftest import grid_section
from thitogene_kedro.models import build_model, collate_sections


def test_patch_token_is_a_linear_map_of_the_channel_last_pixels_plus_positions():
    torch.manual_seed(0)
    model = build_model({"name": "histogene", "preset": "small", "overrides": {"dropout": 0.0}}, 16).eval()
    batch = collate_sections([grid_section(5)])
    captured = {}
    model.vit.register_forward_hook(lambda module, args, output: captured.setdefault("tokens", args[0]))
    with torch.no_grad():
        model(batch)
        pixels = batch.patches[0].float().reshape(5, -1) / 255  # (H, W, C) order, as the reference
        x, y = batch.positions[0, :, 0], batch.positions[0, :, 1]
        expected = model.patch_embedding(pixels) + model.position.x_embed(x) + model.position.y_embed(y)
    torch.testing.assert_close(captured["tokens"][0], expected)


def test_raw_input_scale_lets_the_patch_token_dwarf_the_position_code(c3_window):
    """Baselines-spec §1.5-1: with 0–255 input the patch token's std is ~70× the position code's."""
    batch = collate_sections([c3_window])
    spread = {}
    for scale in ("raw", "unit"):
        torch.manual_seed(0)
        model = build_model({"name": "histogene", "overrides": {"input_scale": scale, "depth": 1}}, 785).eval()
        with torch.no_grad():
            token = model.patch_embedding(model.input_step(batch.patches[0]).flatten(1))
            x_embedding, y_embedding = model.position(batch.positions[0])
        spread[scale] = float(token.std() / (x_embedding + y_embedding).std())
    assert spread["raw"] > 30
    assert spread["unit"] < 1
