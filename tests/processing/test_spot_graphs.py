"""Graph building: neighbours on a grid, deterministic ties, options, position-table checks."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from thitogene_kedro.processing.spot_graphs import (
    GraphBuildingParams,
    build_section_graph,
    edge_index_from_neighbours,
    knn_neighbours,
)
from thitogene_kedro.sections.schema import SectionDataError, build_section


def grid_section(n: int = 5, offset: int = 0):
    xs, ys = np.meshgrid(np.arange(n) + offset, np.arange(n) + offset)
    ids = [f"{x}x{y}" for x, y in zip(xs.ravel(), ys.ravel(), strict=True)]
    spots = pd.DataFrame(
        {"array_x": xs.ravel(), "array_y": ys.ravel(), "pixel_x": xs.ravel() * 10.0, "pixel_y": ys.ravel() * 10.0},
        index=ids,
    )
    counts = pd.DataFrame(np.ones((len(ids), 2), dtype=int), index=ids, columns=["G1", "G2"])
    return build_section(counts, spots, section="T1", patient="T", source="test", image=None)


def test_interior_spots_get_their_four_grid_neighbours():
    adata = grid_section()
    graph = build_section_graph(adata, GraphBuildingParams())
    centre = adata.obs_names.get_loc("2x2")
    src, dst = graph["edge_index"]
    assert sorted(adata.obs_names[dst[src == centre]]) == ["1x2", "2x1", "2x3", "3x2"]
    assert np.bincount(src).tolist() == [4] * adata.n_obs
    assert not (src == dst).any()
    np.testing.assert_array_equal(graph["positions"], adata.obs[["array_x", "array_y"]].to_numpy())


def test_ties_are_broken_by_coordinates_not_spot_order():
    coords = np.array([[0, 0], [1, 0], [-1, 0], [0, 1], [0, -1], [1, 1]])
    assert knn_neighbours(coords, 2)[0].tolist() == [2, 4]  # (-1, 0) then (0, -1) among four at distance 1
    order = np.random.default_rng(0).permutation(len(coords))
    shuffled = knn_neighbours(coords[order], 3)
    as_coords = {tuple(coords[order][i]): {tuple(coords[order][j]) for j in row} for i, row in enumerate(shuffled)}
    assert as_coords == {
        tuple(c): {tuple(coords[j]) for j in row} for c, row in zip(coords, knn_neighbours(coords, 3), strict=True)
    }


def test_symmetric_and_self_loop_options():
    neighbours = np.array([[1], [2], [1]])
    plain = edge_index_from_neighbours(neighbours, symmetric=False, self_loops=False)
    assert plain.T.tolist() == [[0, 1], [1, 2], [2, 1]]
    both = edge_index_from_neighbours(neighbours, symmetric=True, self_loops=True)
    assert both.T.tolist() == [[0, 0], [0, 1], [1, 0], [1, 1], [1, 2], [2, 1], [2, 2]]


def test_coordinates_beyond_the_embedding_table_are_refused():
    with pytest.raises(SectionDataError, match="does not fit the position embedding table of size 64"):
        build_section_graph(grid_section(offset=62), GraphBuildingParams())
    assert (
        build_section_graph(grid_section(offset=62), GraphBuildingParams(position_table_size=128))["positions"].max()
        == 66
    )


def test_too_few_spots():
    with pytest.raises(ValueError, match="needs more than 4 spots"):
        knn_neighbours(np.zeros((3, 2)), 4)
