"""Nodes of the graph_building pipeline: k-nearest-neighbour spot graphs and position indices."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping

import anndata as ad
import numpy as np
import pandas as pd

from thitogene_kedro.processing.spot_graphs import GraphBuildingParams, build_section_graph

logger = logging.getLogger(__name__)


def build_spot_graphs(
    preprocessed_sections: Mapping[str, Callable[[], ad.AnnData]], params: GraphBuildingParams
) -> tuple[dict[str, dict[str, np.ndarray]], pd.DataFrame]:
    """Graph arrays for every preprocessed section, and a report of their degrees and distances."""
    params = GraphBuildingParams.model_validate(params)
    graphs, rows = {}, []
    for name in sorted(preprocessed_sections):
        adata = preprocessed_sections[name]()
        graph = build_section_graph(adata, params)
        graphs[name] = graph
        coords = adata.obs[["array_x", "array_y"]].to_numpy(dtype=np.float64)
        src, dst = graph["edge_index"]
        length = np.hypot(*(coords[src] - coords[dst]).T)
        out_degree = np.bincount(src, minlength=adata.n_obs)
        rows.append(
            {
                "section": name,
                "n_spots": adata.n_obs,
                "n_edges": int(src.size),
                "min_out_degree": int(out_degree.min()),
                "max_out_degree": int(out_degree.max()),
                "max_edge_length": float(length.max()),
                "n_edges_longer_than_2": int((length > 2).sum()),
                "max_position": int(graph["positions"].max()),
            }
        )
    return graphs, pd.DataFrame(rows)
