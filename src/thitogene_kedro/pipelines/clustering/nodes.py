"""Nodes of the clustering pipeline: k-means (or Leiden) of observed and predicted expression, ARI."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

import anndata as ad
import numpy as np
import pandas as pd
from scipy import sparse

from thitogene_kedro.metrics import match_clusters_to_labels
from thitogene_kedro.pipelines.clustering.params import ClusteringParams

logger = logging.getLogger(__name__)


def cluster_expression(matrix: np.ndarray, spatial: np.ndarray, k: int, params: ClusteringParams) -> np.ndarray:
    """Cluster labels of spots from their expression ``(N, G)``; see ``ClusteringParams``."""
    # scanpy and scikit-learn (~170 MiB, ~2 s) load only when a run clusters, not in every process
    # that imports the pipelines (a training run, a fold job)
    import scanpy as sc  # noqa: PLC0415
    from sklearn.cluster import KMeans  # noqa: PLC0415
    from sklearn.neighbors import kneighbors_graph  # noqa: PLC0415

    params = ClusteringParams.model_validate(params)
    data = ad.AnnData(X=np.asarray(matrix, dtype=np.float32))
    if params.scale:
        sc.pp.scale(data)
    n_pcs = int(min(params.n_pcs, data.n_obs - 1, data.n_vars - 1))
    sc.pp.pca(data, n_comps=n_pcs, random_state=params.seed)
    if params.method == "kmeans":
        return KMeans(n_clusters=k, init="k-means++", n_init=params.n_init, random_state=params.seed).fit_predict(
            data.obsm["X_pca"]
        )
    sc.pp.neighbors(data, use_rep="X_pca", random_state=params.seed)
    spatial_graph = kneighbors_graph(np.asarray(spatial), params.spatial_neighbours, include_self=False)
    adjacency = sparse.csr_matrix(data.obsp["connectivities"]) + spatial_graph.maximum(spatial_graph.T)
    sc.tl.leiden(
        data, adjacency=adjacency, resolution=params.leiden_resolution, random_state=params.seed,
        flavor="igraph", n_iterations=2, directed=False,
    )  # fmt: skip
    return data.obs["leiden"].astype(int).to_numpy()


def predicted_by_section(test_predictions: tuple[ad.AnnData, ...]) -> dict[str, pd.DataFrame]:
    """Held-out predictions per section, spots × genes, indexed by the section's own spot ids."""
    predicted = {}
    for adata in test_predictions:
        for section in pd.unique(adata.obs["section"]):
            part = adata[adata.obs["section"] == section]
            predicted[section] = pd.DataFrame(
                np.asarray(part.X), index=part.obs["spot"].astype(str).to_numpy(), columns=part.var_names
            )
    return predicted


def cluster_section(
    section: str, observed: ad.AnnData, predicted: pd.DataFrame | None, params: ClusteringParams
) -> tuple[list[dict[str, Any]], pd.DataFrame, ad.AnnData]:
    """One annotated section clustered from observed and, where it exists, predicted expression.

    Clusters are named after the annotation label they match (``metrics.match_clusters_to_labels``).
    Returns the score rows, the per-spot table and the section (its labelled spots, in the spatial
    layout) with ``obs`` ``annotation`` and ``<source>_clusters`` and scanpy's ``uns['<key>_colors']``.
    """
    from sklearn.metrics import adjusted_rand_score  # noqa: PLC0415 - see cluster_expression

    from thitogene_kedro.plotting import category_colours  # noqa: PLC0415 - one palette with the figures

    labels = observed.obs["label"].astype("string")
    keep = labels.notna() & ~labels.isin(params.ignore_labels)
    observed = observed[keep.to_numpy()].copy()
    truth = labels[keep].astype(str).to_numpy()
    categories = sorted(np.unique(truth))
    k, spatial = len(categories), np.asarray(observed.obsm["spatial"])
    table = pd.DataFrame(
        {"section": section, "spot": observed.obs_names, "label": truth, "x": spatial[:, 0], "y": spatial[:, 1]}
    )
    rows, sources = [], {"observed": np.asarray(observed.X)}
    if predicted is not None:
        sources["predicted"] = predicted.reindex(observed.obs_names).to_numpy()
    else:
        reason = "no held-out prediction: the section has no image or is in no fold's test set"
        rows.append({"section": section, "source": "predicted", "k": k, "spots": len(truth), "ari": np.nan,
                     "note": reason})  # fmt: skip
        logger.info("Clustering %s: observed expression only (%s)", section, reason)
    observed.obs["annotation"] = pd.Categorical(truth, categories=categories)
    clustering = {"method": params.method, "k": k}
    for source, matrix in sources.items():
        clusters = match_clusters_to_labels(truth, cluster_expression(matrix, spatial, k, params))
        ari = round(float(adjusted_rand_score(truth, clusters)), 3)
        rows.append({"section": section, "source": source, "k": k, "spots": len(truth), "ari": ari,
                     "note": params.method})  # fmt: skip
        table[f"cluster_{source}"] = clusters
        named = categories + sorted(set(clusters) - set(categories))
        observed.obs[f"{source}_clusters"] = pd.Categorical(clusters, categories=named)
        clustering[f"{source}_ari"] = ari
    colours = category_colours(sorted(set().union(*(observed.obs[c].cat.categories for c in _label_columns(observed)))))
    for column in _label_columns(observed):
        observed.uns[f"{column}_colors"] = [colours[c] for c in observed.obs[column].cat.categories]
    observed.uns["clustering"] = clustering
    return rows, table, observed


def _label_columns(adata: ad.AnnData) -> list[str]:
    return ["annotation"] + [c for c in adata.obs.columns if c.endswith("_clusters")]


def cluster_sections(
    preprocessed_sections: Mapping[str, Callable[[], ad.AnnData]],
    params: ClusteringParams,
    *test_predictions: ad.AnnData,
) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, dict[str, float]], dict[str, ad.AnnData]]:
    """ARI of clusterings of observed and (where a fold held the section out) predicted expression.

    Returns:
        ``(scores, assignments, metrics, sections)``: per section and source (observed/predicted)
        the ARI, k and spots, or the reason there is no predicted expression; per spot the label
        and the cluster of each source; the ARIs as MLflow metrics; each clustered section as a
        spatial AnnData with its labels and clusters in ``obs`` (``sc.pl.spatial(a, color=...)``).
    """
    params = ClusteringParams.model_validate(params)
    predicted = predicted_by_section(test_predictions)
    rows, assignments, clustered = [], [], {}
    names = list(preprocessed_sections) if params.sections == "annotated" else list(params.sections)
    for section in names:
        observed = preprocessed_sections[section]()  # read once: label check and clustering
        labels = observed.obs["label"].astype("string")
        if not (labels.notna() & ~labels.isin(params.ignore_labels)).any():
            if params.sections == "annotated":
                continue
            raise ValueError(f"clustering.sections lists section {section}, whose spots carry no usable label")
        section_rows, table, clustered[section] = cluster_section(section, observed, predicted.get(section), params)
        rows += section_rows
        assignments.append(table)
    scores = pd.DataFrame(rows, columns=["section", "source", "k", "spots", "ari", "note"])
    for row in scores.dropna(subset=["ari"]).itertuples():
        logger.info("Clustering %s (%s expression, k=%d): ARI %.3f", row.section, row.source, row.k, row.ari)
    metrics = {
        f"{r.section}.{r.source}_ari": {"value": float(r.ari), "step": 0}
        for r in scores.dropna(subset=["ari"]).itertuples()
    }
    table = pd.concat(assignments, ignore_index=True) if assignments else pd.DataFrame()
    return scores, table, metrics, clustered


def plot_cluster_maps(clustered_sections: Mapping[str, Callable[[], ad.AnnData]]) -> dict[str, Any]:
    """Per clustered section: the annotation next to each clustering (ARI in the title), over the
    tissue where the section has an image, each domain in one colour throughout."""
    from thitogene_kedro.plotting import cluster_maps  # noqa: PLC0415 - matplotlib on demand

    figures = {}
    for section, load in clustered_sections.items():
        adata = load()
        clustering = adata.uns["clustering"]
        method = "k-means" if clustering["method"] == "kmeans" else "Leiden"
        panels = {"annotation": "annotation"}
        for column in _label_columns(adata)[1:]:
            source = column.removesuffix("_clusters")
            panels[f"{source} clusters ({method}, ARI {clustering[f'{source}_ari']:.2f})"] = column
        categories = list(adata.obs["annotation"].cat.categories)
        extra = sorted({c for col in panels.values() for c in adata.obs[col].cat.categories} - set(categories))
        figures[f"{section}_clusters"] = cluster_maps(section, adata, panels, categories + extra)
    return figures
