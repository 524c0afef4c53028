"""Collating sections: padding, masks, adjacency orientation and named errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.models.conftest import grid_section
from thitogene_kedro.models import SectionExample, collate_sections


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
