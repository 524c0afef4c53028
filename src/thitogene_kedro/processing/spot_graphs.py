"""Spot graphs: the k-nearest-spot edges and the position-embedding indices of a section."""

from __future__ import annotations

from typing import Literal

import anndata as ad
import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from thitogene_kedro.sections.schema import SectionDataError


class GraphBuildingParams(BaseModel):
    """The spot graph and the position indices.

    The reference builds a directed k = 4 nearest-neighbour graph on integer array coordinates,
    Euclidean, without self-loops and without symmetrising; ties at the k-th distance fall to
    numpy's unstable argsort. Here ties are broken deterministically (distance, then the neighbour's x, then y),
    independent of the order spots are listed in.
    ``symmetric`` adds the reverse of every edge; ``self_loops`` adds ``(i, i)``.
    Position indices are the integer array coordinates, which must lie in
    ``[0, position_table_size)``.
    """

    model_config = ConfigDict(extra="forbid")

    k: int = Field(4, ge=1)
    coordinates: Literal["array", "pixel"] = "array"
    symmetric: bool = False
    self_loops: bool = False
    position_table_size: int = Field(64, ge=1)


_ROW_CHUNK = 1024


def knn_neighbours(coords: np.ndarray, k: int) -> np.ndarray:
    """``(N, k)`` indices of each spot's k nearest other spots (Euclidean).

    Ties are broken by the neighbour's coordinates (x, then y), so the graph is the same on every
    run and does not depend on the order the spots are listed in.
    """
    coords = np.asarray(coords, dtype=np.float64)
    n = len(coords)
    if n <= k:
        raise ValueError(f"a {k}-nearest-neighbour graph needs more than {k} spots, got {n}")
    neighbours = np.empty((n, k), dtype=np.int64)
    for start in range(0, n, _ROW_CHUNK):
        stop = min(start + _ROW_CHUNK, n)
        d2 = ((coords[start:stop, None, :] - coords[None, :, :]) ** 2).sum(axis=-1)
        d2[np.arange(stop - start), np.arange(start, stop)] = np.inf
        by_x = np.broadcast_to(coords[:, 0], d2.shape)
        by_y = np.broadcast_to(coords[:, 1], d2.shape)
        neighbours[start:stop] = np.lexsort((by_y, by_x, d2), axis=-1)[:, :k]
    return neighbours


def edge_index_from_neighbours(neighbours: np.ndarray, symmetric: bool, self_loops: bool) -> np.ndarray:
    """``(2, E)`` edges ``[spot, neighbour]``, sorted and unique; optional reverse edges and self-loops."""
    n, k = neighbours.shape
    edges = np.stack([np.repeat(np.arange(n), k), neighbours.ravel()])
    if symmetric:
        edges = np.concatenate([edges, edges[::-1]], axis=1)
    if self_loops:
        edges = np.concatenate([edges, np.stack([np.arange(n), np.arange(n)])], axis=1)
    return np.unique(edges, axis=1)


def knn_edge_index(coords: np.ndarray, k: int, symmetric: bool = False, self_loops: bool = False) -> np.ndarray:
    """``(2, E)`` ``[spot, neighbour]`` edges of the k-nearest-spot graph of ``coords``."""
    return edge_index_from_neighbours(knn_neighbours(coords, k), symmetric, self_loops)


def position_indices(adata: ad.AnnData, table_size: int) -> np.ndarray:
    """``(N, 2)`` integer ``(x, y)`` array coordinates used as position-embedding indices.

    Raises:
        SectionDataError: a coordinate is negative or does not fit the embedding table.
    """
    positions = adata.obs[["array_x", "array_y"]].to_numpy(dtype=np.int64)
    section = str(adata.uns.get("section", ""))
    if positions.min() < 0:
        raise SectionDataError(None, section, f"negative array coordinate {positions.min()}")
    if positions.max() >= table_size:
        over = adata.obs_names[(positions >= table_size).any(axis=1)]
        raise SectionDataError(
            None,
            section,
            f"array coordinate {positions.max()} does not fit the position embedding table of size "
            f"{table_size} (graph_building.position_table_size); spots {list(over[:5])}",
        )
    return positions


def build_section_graph(adata: ad.AnnData, params: GraphBuildingParams) -> dict[str, np.ndarray]:
    """The graph arrays of one section: ``edge_index``, ``positions``, ``spot_ids``."""
    params = GraphBuildingParams.model_validate(params)
    coords = adata.obs[["array_x", "array_y"]].to_numpy() if params.coordinates == "array" else adata.obsm["spatial"]
    return {
        "edge_index": knn_edge_index(coords, params.k, params.symmetric, params.self_loops),
        "positions": position_indices(adata, params.position_table_size),
        "spot_ids": np.asarray(adata.obs_names, dtype=str),
    }
