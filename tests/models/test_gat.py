"""GAT options: the softmax axis and self-loops behave as reference-spec §1.4 describes."""

from __future__ import annotations

import pytest
import torch

from thitogene_kedro.models.gat import GraphAttention, MultiHeadGAT


def chain_graph(n: int) -> torch.Tensor:
    """Spot i lists i+1 and i+2 (wrapping) as neighbours; nobody lists spot 0 except n-2, n-1."""
    adjacency = torch.zeros(1, n, n, dtype=torch.bool)
    for i in range(n):
        adjacency[0, i, (i + 1) % n] = adjacency[0, i, (i + 2) % n] = True
    return adjacency


def layer(axis: str, self_loops: bool) -> GraphAttention:
    torch.manual_seed(0)
    return GraphAttention(6, 5, 2, 0.01, 0.0, axis, self_loops).eval()


def test_neighbours_axis_normalises_each_spots_neighbours():
    gat = layer("neighbours", self_loops=False)
    adjacency, mask = chain_graph(7), torch.ones(1, 7, dtype=torch.bool)
    alpha = gat.attention(torch.einsum("bnd,hdo->bhno", torch.randn(1, 7, 6), gat.W), adjacency, mask)
    torch.testing.assert_close(alpha.sum(-1), torch.ones(1, 2, 7))
    assert (alpha[:, :, ~adjacency[0]] == 0).all()  # nothing off the graph, not even the diagonal


def test_receivers_axis_normalises_over_the_spots_that_list_a_neighbour():
    gat = layer("receivers", self_loops=False)
    adjacency = torch.zeros(1, 5, 5, dtype=torch.bool)
    adjacency[0, 1, 2] = adjacency[0, 3, 2] = adjacency[0, 4, 2] = adjacency[0, 2, 1] = True
    mask = torch.ones(1, 5, dtype=torch.bool)
    alpha = gat.attention(torch.einsum("bnd,hdo->bhno", torch.randn(1, 5, 6), gat.W), adjacency, mask)
    torch.testing.assert_close(alpha[0, :, :, 2].sum(-1), torch.ones(2))  # column 2 sums to 1 over 1, 3, 4
    assert alpha[0, :, [1, 3, 4], 2].min() > 0
    # spots 0, 3, 4 are listed by nobody: their columns become uniform 1/N and leak into every spot
    torch.testing.assert_close(alpha[0, :, :, 0], torch.full((2, 5), 0.2))
    row_sums = alpha.sum(-1)
    assert row_sums.max() > 1.5 and row_sums.min() < 1  # rows no longer sum to 1


def test_self_loops_decide_whether_a_spot_sees_its_own_features():
    """Each spot lists one neighbour (i → i+1), so without self-loops its weight is 1 whatever h_i is."""
    n = 8
    adjacency = torch.zeros(1, n, n, dtype=torch.bool)
    adjacency[0, torch.arange(n), (torch.arange(n) + 1) % n] = True
    mask = torch.ones(1, n, dtype=torch.bool)
    x = torch.randn(1, n, 6)
    changed = x.clone()
    changed[0, 3] += 5.0  # spot 3 is listed by spot 2 only
    for self_loops in (False, True):
        gat = layer("neighbours", self_loops)
        delta = (gat(changed, adjacency, mask) - gat(x, adjacency, mask)).abs().amax(dim=(0, 1, 3))
        affected = set(torch.nonzero(delta > 1e-6).flatten().tolist())
        assert affected == ({2, 3} if self_loops else {2})


@pytest.mark.parametrize("axis", ["neighbours", "receivers"])
def test_padded_spots_get_and_give_nothing(axis):
    gat = layer(axis, self_loops=False)
    adjacency = chain_graph(6)
    x = torch.randn(1, 6, 6)
    padded_adjacency = torch.zeros(1, 9, 9, dtype=torch.bool)
    padded_adjacency[:, :6, :6] = adjacency
    padded_x = torch.cat([x, torch.randn(1, 3, 6) * 50], dim=1)
    mask = torch.tensor([[True] * 6 + [False] * 3])
    out = gat(padded_x, padded_adjacency, mask)
    torch.testing.assert_close(out[:, :, :6], gat(x, adjacency, torch.ones(1, 6, dtype=torch.bool)))
    assert (out[:, :, 6:] == 0).all()


def test_options_change_the_paper_gat_output():
    """Reference column normalisation differs from row normalisation (spec: max |Δ| ≈ 1.3 at init)."""
    x, adjacency, mask = torch.randn(1, 40, 64), chain_graph(40), torch.ones(1, 40, dtype=torch.bool)
    outputs = {}
    for axis in ("neighbours", "receivers"):
        torch.manual_seed(0)
        outputs[axis] = MultiHeadGAT(64, 32, 16, 4, 0.2, 0.01, axis, False).eval()(x, adjacency, mask)
    assert (outputs["neighbours"] - outputs["receivers"]).abs().max() > 1e-2
