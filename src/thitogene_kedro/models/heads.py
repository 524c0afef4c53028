"""Per-spot output heads: gene expression and the ZINB distribution parameters."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def thitogene_gene_head(in_dim: int, hidden_dim: int, n_genes: int) -> nn.Sequential:
    """Linear → ReLU → LayerNorm → Linear (linear output: log-normalised expression)."""
    return nn.Sequential(
        nn.Linear(in_dim, hidden_dim), nn.ReLU(), nn.LayerNorm(hidden_dim), nn.Linear(hidden_dim, n_genes)
    )


def layernorm_gene_head(dim: int, n_genes: int) -> nn.Sequential:
    """LayerNorm → Linear, the HisToGene and Hist2ST head."""
    return nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, n_genes))


class ClampedExp(nn.Module):
    """ZINB mean: exp(x) clamped to [1e-5, 1e6]."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.clamp(torch.exp(x), 1e-5, 1e6)


class ClampedSoftplus(nn.Module):
    """ZINB dispersion: softplus(x) clamped to [1e-4, 1e4]."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.clamp(F.softplus(x), 1e-4, 1e4)


class ZINBHeads(nn.Module):
    """Mean μ, dispersion θ and dropout probability π per spot and gene (Hist2ST ``NB_module``)."""

    def __init__(self, dim: int, n_genes: int) -> None:
        super().__init__()
        self.mean = nn.Sequential(nn.Linear(dim, n_genes), ClampedExp())
        self.disp = nn.Sequential(nn.Linear(dim, n_genes), ClampedSoftplus())
        self.pi = nn.Sequential(nn.Linear(dim, n_genes), nn.Sigmoid())

    def forward(self, h: torch.Tensor) -> dict[str, torch.Tensor]:
        """Always in float32: the clamps (up to 1e6) overflow float16 under autocast."""
        with torch.autocast(device_type=h.device.type, enabled=False):
            h = h.float()
            return {"zinb_mean": self.mean(h), "zinb_dispersion": self.disp(h), "zinb_dropout": self.pi(h)}
