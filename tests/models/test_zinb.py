"""The ZINB likelihood against scipy's negative binomial, and the size factors."""

from __future__ import annotations

import numpy as np
import torch
from scipy import stats

from thitogene_kedro.models.zinb import size_factors, zinb_nll


def test_without_zero_inflation_it_is_the_negative_binomial_nll():
    rng = np.random.default_rng(0)
    counts = rng.poisson(3.0, (1, 20, 6)).astype(np.float32)
    mean = rng.uniform(0.5, 5, (1, 20, 6)).astype(np.float32)
    theta = rng.uniform(0.5, 4, (1, 20, 6)).astype(np.float32)
    factor = rng.uniform(0.5, 2, (1, 20)).astype(np.float32)
    mu = mean * factor[..., None]
    expected = -stats.nbinom.logpmf(counts, theta, theta / (theta + mu)).mean()
    t = {k: torch.from_numpy(v) for k, v in {"counts": counts, "mean": mean, "theta": theta, "f": factor}.items()}
    got = zinb_nll(t["counts"], t["mean"], t["theta"], torch.zeros(1, 20, 6), t["f"], torch.ones(1, 20, dtype=bool))
    assert abs(float(got) - expected) < 1e-3


def test_zero_inflation_raises_the_likelihood_of_zeros_and_lowers_that_of_counts():
    ones = torch.ones(1, 1, 2)
    counts = torch.tensor([[[0.0, 5.0]]])
    mask = torch.ones(1, 1, dtype=bool)
    plain = [
        zinb_nll(counts[..., i : i + 1], ones[..., :1] * 3, ones[..., :1], ones[..., :1] * 0, torch.ones(1, 1), mask)
        for i in range(2)
    ]
    inflated = [
        zinb_nll(counts[..., i : i + 1], ones[..., :1] * 3, ones[..., :1], ones[..., :1] * 0.5, torch.ones(1, 1), mask)
        for i in range(2)
    ]
    assert inflated[0] < plain[0] and inflated[1] > plain[1]


def test_size_factors_are_library_over_section_median_on_real_spots_only():
    counts = torch.tensor([[[1.0, 1], [2, 2], [3, 3], [0, 0]], [[4.0, 4], [0, 0], [0, 0], [0, 0]]])
    mask = torch.tensor([[True, True, True, False], [True, False, False, False]])
    expected = torch.tensor([[0.5, 1.0, 1.5, 0.0], [1.0, 0.0, 0.0, 0.0]])
    torch.testing.assert_close(size_factors(counts, mask), expected)


def test_size_factors_use_numpy_median_for_an_even_number_of_spots():
    """The reference divides by ``np.median``: the mean of the two middle libraries, not the lower."""
    libraries = np.array([1.0, 2.0, 5.0, 9.0])  # np.median 3.5; torch.median would give 2
    counts = torch.tensor(np.stack([libraries, np.zeros(4)], axis=1)[None], dtype=torch.float32)
    mask = torch.ones(1, 4, dtype=torch.bool)
    expected = torch.tensor(libraries / np.median(libraries), dtype=torch.float32)[None]
    torch.testing.assert_close(size_factors(counts, mask), expected)
