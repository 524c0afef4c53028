"""Validated parameters of the graph_building pipeline (``conf/base/parameters_graph_building.yml``)."""

from thitogene_kedro.processing.spot_graphs import GraphBuildingParams

__all__ = ["GraphBuildingParams"]
