"""Validated parameters of the graph_building pipeline (``conf/base/parameters_graph_building.yml``)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


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
