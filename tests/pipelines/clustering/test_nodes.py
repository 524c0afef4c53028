"""Clustering: k-means on PCA against scikit-learn, ARI, and the sections that can be clustered."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
import scanpy as sc
from sklearn.cluster import KMeans
from sklearn.metrics import adjusted_rand_score

from thitogene_kedro.pipelines.clustering.nodes import cluster_expression, cluster_sections, plot_cluster_maps
from thitogene_kedro.pipelines.clustering.params import ClusteringParams


def blobs(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = np.repeat(["tumour", "stroma", "immune"], 20)
    centres = {"tumour": 0.0, "stroma": 4.0, "immune": 8.0}
    matrix = np.stack([rng.normal(centres[label], 1.0, 12) for label in labels])
    spatial = rng.uniform(0, 100, (60, 2))
    return matrix, labels, spatial


def test_kmeans_path_equals_scanpy_pca_then_sklearn_kmeans():
    matrix, labels, spatial = blobs()
    params = ClusteringParams(n_pcs=5)
    clusters = cluster_expression(matrix, spatial, 3, params)
    data = ad.AnnData(X=matrix.astype(np.float32))
    sc.pp.scale(data)
    sc.pp.pca(data, n_comps=5, random_state=0)
    expected = KMeans(n_clusters=3, init="k-means++", n_init=20, random_state=0).fit_predict(data.obsm["X_pca"])
    assert np.array_equal(clusters, expected)
    assert adjusted_rand_score(labels, clusters) == 1.0


def test_leiden_option_finds_the_blobs():
    matrix, labels, _ = blobs(1)
    rng = np.random.default_rng(1)
    spatial = np.stack([rng.uniform(0, 30, 60) + 100 * np.repeat([0, 1, 2], 20), rng.uniform(0, 30, 60)], axis=1)
    clusters = cluster_expression(matrix, spatial, 3, ClusteringParams(method="leiden", n_pcs=5, leiden_resolution=0.5))
    assert adjusted_rand_score(labels, clusters) > 0.8


def section(name: str, labels: np.ndarray | None) -> ad.AnnData:
    matrix, blob_labels, spatial = blobs()
    obs = pd.DataFrame({"label": labels if labels is not None else pd.NA}, index=[f"s{i}" for i in range(60)])
    out = ad.AnnData(X=matrix.astype(np.float32), obs=obs, obsm={"spatial": spatial})
    out.var_names = [f"G{i}" for i in range(12)]
    return out


def test_annotated_sections_observed_and_predicted_with_reasons():
    _, labels, _ = blobs()
    labels = labels.astype(object)
    labels[:5] = "undetermined"
    sections = {"A": section("A", labels), "B": section("B", None), "C": section("C", labels)}
    loaders = {k: (lambda v=v: v) for k, v in sections.items()}
    held_out = ad.AnnData(
        X=sections["A"].X.copy(),
        obs=pd.DataFrame({"section": "A", "spot": [f"s{i}" for i in range(60)]}, index=[f"A:s{i}" for i in range(60)]),
    )  # as predict_fold writes it: the section's own spot ids in obs["spot"]
    held_out.var_names = sections["A"].var_names
    scores, assignments, metrics, clustered = cluster_sections(loaders, ClusteringParams(n_pcs=5), held_out)
    table = scores.set_index(["section", "source"])
    assert set(scores["section"]) == {"A", "C"}  # B has no labels
    assert (
        table.loc[("A", "observed"), "k"] == 3 and table.loc[("A", "observed"), "spots"] == 55
    )  # undetermined dropped
    assert table.loc[("A", "observed"), "ari"] == 1.0 and table.loc[("A", "predicted"), "ari"] == 1.0
    assert (
        np.isnan(table.loc[("C", "predicted"), "ari"])
        and "no held-out prediction" in table.loc[("C", "predicted"), "note"]
    )
    assert set(assignments.columns) >= {"section", "spot", "label", "cluster_observed", "cluster_predicted"}
    assert metrics["A.observed_ari"]["value"] == 1.0
    # clusters carry the annotation's names (Hungarian matching), so a perfect clustering reads as the labels
    a = assignments[assignments["section"] == "A"]
    assert (a["cluster_observed"] == a["label"]).all() and (a["cluster_predicted"] == a["label"]).all()
    # the clustered section: labels and clusters in obs with scanpy's colours, one colour per domain throughout
    adata = clustered["A"]
    assert list(adata.obs["annotation"].cat.categories) == ["immune", "stroma", "tumour"] and adata.n_obs == 55
    assert (
        adata.uns["annotation_colors"]
        == adata.uns["observed_clusters_colors"]
        == adata.uns["predicted_clusters_colors"]
    )
    assert len(set(adata.uns["annotation_colors"])) == 3
    assert adata.uns["clustering"] == {"method": "kmeans", "k": 3, "observed_ari": 1.0, "predicted_ari": 1.0}
    assert "predicted_clusters" not in clustered["C"].obs and clustered["C"].uns["clustering"]["k"] == 3


def test_cluster_maps_name_the_ari_and_draw_each_section():
    _, labels, _ = blobs()
    observed = section("A", labels.astype(object))
    observed.obs["array_x"], observed.obs["array_y"] = np.arange(60) % 10, np.arange(60) // 10
    _, _, _, clustered = cluster_sections({"A": lambda: observed}, ClusteringParams(n_pcs=5))
    figures = plot_cluster_maps({"A": lambda: clustered["A"]})
    pixels = np.asarray(figures["A_clusters"])
    assert set(figures) == {"A_clusters"} and pixels.shape[1] > 600 and pixels.std() > 10
