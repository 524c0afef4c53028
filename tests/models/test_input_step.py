"""The input step: uint8 patches to the network's range."""

from __future__ import annotations

import pytest
import torch

from thitogene_kedro.models.input_step import PixelInput


def test_scales_and_layout():
    patches = torch.randint(0, 256, (2, 4, 5, 3), dtype=torch.uint8)
    unit = PixelInput("unit")(patches)
    assert unit.shape == (2, 3, 4, 5) and float(unit.max()) <= 1.0
    torch.testing.assert_close(PixelInput("raw")(patches), patches.permute(0, 3, 1, 2).float())
    assert PixelInput("raw", channels_first=False)(patches).shape == (2, 4, 5, 3)


def test_rejects_float_or_channel_first_input():
    with pytest.raises(TypeError, match="uint8"):
        PixelInput()(torch.zeros(1, 4, 4, 3))
    with pytest.raises(ValueError, match="channel-last"):
        PixelInput()(torch.zeros(1, 3, 4, 4, dtype=torch.uint8))


def test_channels_last_memory_gives_the_same_values_without_a_copy():
    patches = torch.randint(0, 256, (2, 8, 8, 3), dtype=torch.uint8)
    first, last = PixelInput("unit")(patches), PixelInput("unit", channels_last_memory=True)(patches)
    assert first.is_contiguous() and last.is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(first, last)
    assert torch.equal(first, patches.permute(0, 3, 1, 2).float() / 255.0)  # the same rounding as two steps
