"""Validated parameters of the clustering pipeline (``conf/base/parameters_clustering.yml``)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class ClusteringParams(BaseModel):
    """Clustering of annotated sections into tissue domains, scored by ARI against the annotation.

    ``sections: annotated`` takes every configured section whose spots carry labels (her2st: B1,
    C1, D1, E1, F1, G2; the synthetic demo: all, its domains); spots labelled ``ignore_labels``
    are left out first, and k = the number of remaining classes (the reference's ``cluster``).
    ``method``: ``kmeans`` on the PCA of the (optionally scaled) expression, seeded, ``n_init``
    initialisations; ``leiden``: Leiden on the union of the expression and spatial neighbour graphs.
    """

    model_config = ConfigDict(extra="forbid")

    sections: Literal["annotated"] | list[str] = "annotated"
    ignore_labels: list[str] = Field(default_factory=lambda: ["undetermined"])
    method: Literal["kmeans", "leiden"] = "kmeans"
    scale: bool = True
    n_pcs: int = Field(50, ge=2)
    n_init: int = Field(20, ge=1)
    seed: int = 0
    spatial_neighbours: int = Field(6, ge=1)
    leiden_resolution: float = Field(1.0, gt=0)
