"""Zero-inflated negative binomial negative log-likelihood (Hist2ST ``NB_module.ZINB_loss``).

With μ = mean · s (s: the spot's size factor), θ the dispersion and π the dropout probability:

- x > 0:  −log(1 − π) + lnΓ(θ) + lnΓ(x + 1) − lnΓ(x + θ) + (θ + x)·log(1 + μ/θ) + x·(log θ − log μ)
- x = 0:  −log(π + (1 − π)·(θ/(θ + μ))^θ)

averaged over real spots × genes; ε = 1e-10 inside logs and Γ arguments, as in the reference.
"""

from __future__ import annotations

import torch

from thitogene_kedro.models.base import masked_mean

EPS = 1e-10


def size_factors(counts: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``(B, N)`` library size over the selected genes / its median over each section's real spots.

    The median is ``np.median``'s, as in the reference: the mean of the two middle values for an
    even number of spots (``torch.median`` would return the lower one). A section whose median
    library is 0 is divided by 1 instead (the reference would divide by 0).
    """
    library = counts.sum(dim=-1)
    factors = torch.zeros_like(library)
    for b in range(library.shape[0]):
        real = library[b][mask[b]]
        factors[b, : real.numel()] = real / real.quantile(0.5).clamp_min(1.0)
    return factors * mask


def zinb_nll(
    counts: torch.Tensor,
    mean: torch.Tensor,
    dispersion: torch.Tensor,
    dropout: torch.Tensor,
    size_factor: torch.Tensor,
    mask: torch.Tensor,
) -> torch.Tensor:
    """Mean ZINB negative log-likelihood of ``counts`` ``(B, N, G)``; see the module docstring."""
    x, theta, pi = counts.float(), dispersion.float(), dropout.float()
    mu = mean.float() * size_factor[..., None]
    t1 = torch.lgamma(theta + EPS) + torch.lgamma(x + 1.0) - torch.lgamma(x + theta + EPS)
    t2 = (theta + x) * torch.log1p(mu / (theta + EPS)) + x * (torch.log(theta + EPS) - torch.log(mu + EPS))
    nonzero_case = t1 + t2 - torch.log(1.0 - pi + EPS)
    zero_nb = torch.pow(theta / (theta + mu + EPS), theta)
    zero_case = -torch.log(pi + (1.0 - pi) * zero_nb + EPS)
    return masked_mean(torch.where(x <= 1e-8, zero_case, nonzero_case), mask)
