"""Hist2ST augmentations: one draw per section (reference) or per spot."""

from __future__ import annotations

import torch

from thitogene_kedro.models.augment import augment_patches


def test_section_draw_transforms_identical_patches_identically_and_spot_draw_does_not():
    torch.manual_seed(0)
    patch = torch.rand(1, 3, 16, 16)
    patches = patch.expand(6, 3, 16, 16).contiguous()
    sections = torch.tensor([0, 0, 0, 1, 1, 1])
    by_section = augment_patches(patches, sections, "section", 0.5, 90.0, 0.5)
    assert all(torch.equal(by_section[i], by_section[0]) for i in range(3))
    assert all(torch.equal(by_section[i], by_section[3]) for i in range(3, 6))
    by_spot = augment_patches(patches, sections, "spot", 0.5, 90.0, 0.5)
    assert not all(torch.equal(by_spot[i], by_spot[0]) for i in range(6))


def test_each_augmentation_does_what_it_says():
    patches = torch.rand(2, 3, 8, 8)
    sections = torch.zeros(2, dtype=torch.long)
    assert torch.equal(augment_patches(patches, sections, "spot", 0.0, 0.0, 0.0), patches)
    torch.testing.assert_close(augment_patches(patches, sections, "spot", 0.0, 0.0, 1.0), patches.flip(-1))
    grey = augment_patches(patches, sections, "spot", 1.0, 0.0, 0.0)
    assert torch.equal(grey[:, 0], grey[:, 1]) and torch.equal(grey[:, 1], grey[:, 2])
    torch.testing.assert_close(grey[:, 0], 0.2989 * patches[:, 0] + 0.587 * patches[:, 1] + 0.114 * patches[:, 2])
