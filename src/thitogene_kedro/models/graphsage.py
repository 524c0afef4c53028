"""Hist2ST's graph layers: GraphSAGE mean aggregation and an LSTM jumping-knowledge readout.

Layer (``gcn.py`` ``gs_block``, ``gcn=True``): h'_i = normalise(ReLU(W · mean_{j∈N(i)} h_j)), with
no self feature and no bias; rows are L2-normalised. Readout: the L layer outputs form a length-L
sequence per spot, run through a 2-layer LSTM, and the L outputs are averaged.

The reference divides by the out-degree, so a spot without neighbours gets 0/0 = NaN, which the
next layer spreads to the whole section (``baselines-spec.md`` §2.7-3). Here such a spot
aggregates to zero instead.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class MeanNeighbourLayer(nn.Module):
    """One ``gs_block``: ``(B, N, D_in)`` and adjacency ``(B, N, N)`` → ``(B, N, D_out)``."""

    def __init__(self, in_dim: int, out_dim: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(out_dim, in_dim))
        nn.init.xavier_uniform_(self.weight)

    def forward(self, x: torch.Tensor, adjacency: torch.Tensor) -> torch.Tensor:
        a = adjacency.to(x.dtype)
        degree = a.sum(dim=-1, keepdim=True).clamp_min(1)
        neighbours = (a @ x) / degree
        out = F.relu(neighbours @ self.weight.t())
        return F.normalize(out.float(), p=2, dim=-1).to(out.dtype)  # float32: eps 1e-12 underflows in fp16


class LSTMJumpingKnowledge(nn.Module):
    """Per-spot LSTM over the stacked layer outputs, averaged over the layers."""

    def __init__(self, dim: int, num_layers: int = 2) -> None:
        super().__init__()
        self.lstm = nn.LSTM(dim, dim, num_layers=num_layers)

    def forward(self, layer_outputs: list[torch.Tensor]) -> torch.Tensor:
        """L tensors ``(M, D)`` → ``(M, D)``."""
        sequence = torch.stack(layer_outputs)  # (L, M, D): sequence = layer index, batch = spots
        output, _ = self.lstm(sequence)
        return output.mean(dim=0)
