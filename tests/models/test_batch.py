"""Collating sections: padding, masks, adjacency orientation and named errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.models.conftest import grid_section
from thitogene_kedro.models import SectionExample, collate_sections, examples_on


def test_padding_mask_and_adjacency():
    a, b = grid_section(5, section_id="a"), grid_section(8, section_id="b", seed=1)
    batch = collate_sections([a, b])
    assert batch.patches.shape == (2, 8, 112, 112, 3) and batch.patches.dtype == torch.uint8
    assert batch.mask.sum(1).tolist() == [5, 8] and batch.section_ids == ["a", "b"]
    assert (batch.patches[0, 5:] == 0).all() and (batch.targets[0, 5:] == 0).all()
    spot, neighbour = a.edge_index[:, 0]
    assert batch.adjacency[0, spot, neighbour] and batch.adjacency[0].sum() == a.edge_index.shape[1]
    assert not batch.adjacency[0, 5:].any() and not batch.adjacency[0, :, 5:].any()
    assert batch.to("cpu").patches is not None


def test_inconsistent_sections_are_named():
    a = grid_section(5, section_id="a")
    with pytest.raises(ValueError, match="section b: patch shape"):
        collate_sections([a, grid_section(5, section_id="b", patch_size=56)])
    with pytest.raises(ValueError, match="section b: targets"):
        collate_sections([a, grid_section(5, section_id="b", n_genes=3)])
    with pytest.raises(ValueError, match="section x: edge_index refers to spots outside 0..4"):
        SectionExample("x", a.patches, a.positions, np.array([[0], [9]]))
    with pytest.raises(ValueError, match="zero sections"):
        collate_sections([])


def _assert_same_batch(batch, reference) -> None:
    for name in ("patches", "positions", "edge_index", "mask", "targets", "counts"):
        torch.testing.assert_close(getattr(batch, name).cpu(), getattr(reference, name), rtol=0, atol=0)
    assert batch.section_ids == reference.section_ids


DEVICES = [
    "cpu",
    pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")),
]


@pytest.mark.parametrize("device", DEVICES)
def test_sections_kept_on_a_device_give_the_same_batches(device):
    """The GPU-resident path (``examples_on``) builds the batches the host path builds, on the device."""
    a, b = grid_section(5, section_id="a"), grid_section(8, section_id="b", seed=1)
    a = SectionExample(a.section_id, a.patches, a.positions, a.edge_index, a.targets, a.targets * 3)
    b = SectionExample(b.section_id, b.patches, b.positions, b.edge_index, b.targets, b.targets * 3)
    resident = examples_on([a, b], device)
    assert resident[0].patches.dtype == torch.uint8 and resident[0].patches.device.type == device
    for chosen in ([0], [1, 0], [0, 1]):
        batch = collate_sections([resident[i] for i in chosen])
        assert batch.patches.device.type == batch.edge_index.device.type == device
        _assert_same_batch(batch, collate_sections([[a, b][i] for i in chosen]))
