"""Metrics on hand-computed cases, constant columns included."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats
from sklearn.metrics import adjusted_rand_score

from thitogene_kedro.metrics import match_clusters_to_labels, paired_comparison, pearson_with_p, section_metrics


def test_pcc_and_p_value_equal_scipy_per_gene():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(25, 5))
    y = 0.5 * x + rng.normal(size=(25, 5))
    r, p = pearson_with_p(x, y)
    for gene in range(5):
        expected = stats.pearsonr(x[:, gene], y[:, gene])
        assert r[gene] == pytest.approx(expected.statistic) and p[gene] == pytest.approx(expected.pvalue)


def test_hand_computed_section_with_a_constant_prediction_and_a_constant_target():
    observed = np.array([[1.0, 0.0, 2.0], [2.0, 0.0, 4.0], [3.0, 0.0, 6.0]])
    predicted = np.array([[3.0, 1.0, 5.0], [2.0, 2.0, 5.0], [1.0, 3.0, 5.0]])
    # gene 0: r = -1; gene 1: target constant -> NaN; gene 2: prediction constant -> NaN
    r, p = pearson_with_p(predicted, observed)
    assert r[0] == pytest.approx(-1.0) and np.isnan(r[1:]).all() and np.isnan(p[1:]).all()
    metrics = section_metrics(predicted, observed)
    assert metrics["genes_nan_pcc"] == 2
    assert metrics["pcc_mean"] == pytest.approx(-1 / 3)  # NaN counted as 0
    assert metrics["pcc_median"] == pytest.approx(0.0)
    assert metrics["pcc_mean_nan_dropped"] == pytest.approx(-1.0)  # the reference's nanmean
    errors = (predicted - observed).ravel()
    assert metrics["mse"] == pytest.approx(np.mean(errors**2)) and metrics["mae"] == pytest.approx(
        np.mean(np.abs(errors))
    )
    assert metrics["mae"] == pytest.approx((2 + 0 + 2 + 1 + 2 + 3 + 3 + 1 + 1) / 9)


def test_all_constant_section_has_no_nan_dropped_mean():
    metrics = section_metrics(np.ones((4, 2)), np.arange(8.0).reshape(4, 2))
    assert metrics["genes_nan_pcc"] == 2 and metrics["pcc_mean"] == 0.0 and np.isnan(metrics["pcc_mean_nan_dropped"])


def test_shapes_must_match():
    with pytest.raises(ValueError, match="same \\(spots, genes\\) shape"):
        pearson_with_p(np.zeros((3, 2)), np.zeros((3, 3)))


def test_paired_comparison_of_two_models_on_the_same_sections():
    result = paired_comparison([0.3, 0.2, 0.5, 0.4], [0.1, 0.2, 0.4, 0.5])
    assert result["sections"] == 4 and result["wins"] == 2
    assert result["mean_difference"] == pytest.approx(0.05) and result["median_difference"] == pytest.approx(0.05)
    assert result["pcc_mean_a"] == pytest.approx(0.35) and result["pcc_mean_b"] == pytest.approx(0.3)
    assert result["wilcoxon_p"] == pytest.approx(stats.wilcoxon([0.2, 0.0, 0.1, -0.1]).pvalue)
    assert np.isnan(paired_comparison([0.3], [0.1])["wilcoxon_p"])  # one section: no test
    assert np.isnan(paired_comparison([0.3, 0.2], [0.3, 0.2])["wilcoxon_p"])  # no difference: no test


def test_clusters_are_named_after_the_labels_they_overlap_one_to_one():
    labels = np.array(["tumour"] * 6 + ["stroma"] * 4 + ["immune"] * 2)
    clusters = np.array([2] * 5 + [0] + [0] * 4 + [1] * 2)  # cluster 0 holds a tumour spot and the stroma
    assert list(match_clusters_to_labels(labels, clusters)) == ["tumour"] * 5 + ["stroma"] * 5 + ["immune"] * 2
    # more clusters than labels: the one left over keeps its id; the ARI is unchanged by renaming
    four = np.array([3] * 6 + [1] * 4 + [0] + [2])
    named = match_clusters_to_labels(labels, four)
    assert set(named) == {"tumour", "stroma", "immune", "cluster 2"} or set(named) == {
        "tumour",
        "stroma",
        "immune",
        "cluster 0",
    }
    assert adjusted_rand_score(labels, named) == adjusted_rand_score(labels, four)
