"""Multi-head graph attention network over the spot graph (THItoGene ``GATLayer.py``).

One head (paper Eqs. 13–14):  e_ij = LeakyReLU(a₁ᵀ W h_i + a₂ᵀ W h_j)  for j ∈ N(i),
α = softmax(e),  h'_i = Σ_j α_ij W h_j.  The hidden layer concatenates ``heads`` heads, each
followed by ELU; one output head (no concatenation) follows, then ELU. Dropout acts on the input
features, between the layers and on the attention coefficients. LeakyReLU slope is 0.01 as in
the reference (GAT's paper uses 0.2); non-edges get the reference's −9e15 logit.

Two reference behaviours change results and are options (``reference-spec.md`` §1.4-1/2):

- ``softmax_axis``: ``neighbours`` (default, standard GAT: α_ij sums to 1 over each spot's
  neighbours j) or ``receivers`` (the reference: α_ij sums to 1 over the spots i that list j as a
  neighbour, because its adjacency arrives with a batch axis and ``softmax(dim=1)`` hits the
  query axis). In ``receivers`` mode a spot that nobody lists leaks 1/N of its features into
  every spot, as in the reference.
- ``self_loops``: True (default, standard GAT) lets each spot attend to itself; False is the
  reference, where a spot's output is built only from its neighbours' features.

Padded spots (``mask`` False) never contribute to or receive attention.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

SoftmaxAxis = Literal["neighbours", "receivers"]

NON_EDGE_LOGIT = -9e15  # the reference's mask value
PADDING_LOGIT = -1e30  # below any non-edge, so padded spots get exactly zero weight


class GraphAttention(nn.Module):
    """``heads`` graph-attention heads in parallel: ``(B, N, D)`` → ``(B, heads, N, out_dim)``."""

    def __init__(
        self,
        in_dim: int,
        out_dim: int,
        heads: int,
        leaky_relu_slope: float,
        dropout: float,
        softmax_axis: SoftmaxAxis,
        self_loops: bool,
    ) -> None:
        super().__init__()
        self.out_dim, self.slope, self.dropout = out_dim, leaky_relu_slope, dropout
        self.softmax_axis, self.self_loops = softmax_axis, self_loops
        self.W = nn.Parameter(torch.empty(heads, in_dim, out_dim))
        self.a = nn.Parameter(torch.empty(heads, 2 * out_dim, 1))
        for h in range(heads):  # the reference's per-head xavier_uniform(gain=1.414)
            nn.init.xavier_uniform_(self.W[h], gain=1.414)
            nn.init.xavier_uniform_(self.a[h], gain=1.414)

    def attention(self, wh: torch.Tensor, adjacency: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """``(B, heads, N, N)`` float32 attention coefficients α_ij (before dropout)."""
        source = wh @ self.a[:, : self.out_dim]  # a₁ᵀ W h_i: (B, H, N, 1)
        target = wh @ self.a[:, self.out_dim :]  # a₂ᵀ W h_j
        logits = F.leaky_relu((source + target.transpose(-1, -2)).float(), self.slope)
        edges = adjacency
        if self.self_loops:
            edges = edges | torch.diag_embed(mask)
        pairs = mask[:, :, None] & mask[:, None, :]
        logits = logits.masked_fill(~edges[:, None], NON_EDGE_LOGIT).masked_fill(~pairs[:, None], PADDING_LOGIT)
        dim = -1 if self.softmax_axis == "neighbours" else -2
        return torch.softmax(logits, dim=dim).masked_fill(~pairs[:, None], 0.0)

    def forward(self, h: torch.Tensor, adjacency: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        wh = torch.einsum("bnd,hdo->bhno", h, self.W)
        alpha = F.dropout(self.attention(wh, adjacency, mask), self.dropout, self.training)
        return alpha.to(wh.dtype) @ wh

    def extra_repr(self) -> str:
        return f"softmax_axis={self.softmax_axis!r}, self_loops={self.self_loops}, slope={self.slope}"


class MultiHeadGAT(nn.Module):
    """Dropout → ``heads`` × GAT(in→hidden) + ELU, concatenated → dropout → GAT(→out) → ELU."""

    def __init__(
        self,
        in_dim: int,
        hidden_dim: int,
        out_dim: int,
        heads: int,
        dropout: float,
        leaky_relu_slope: float,
        softmax_axis: SoftmaxAxis,
        self_loops: bool,
    ) -> None:
        super().__init__()
        self.dropout = dropout
        options = {"leaky_relu_slope": leaky_relu_slope, "dropout": dropout}
        options |= {"softmax_axis": softmax_axis, "self_loops": self_loops}
        self.attention_heads = GraphAttention(in_dim, hidden_dim, heads, **options)
        self.out_att = GraphAttention(heads * hidden_dim, out_dim, 1, **options)

    def forward(self, x: torch.Tensor, adjacency: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """``(B, N, in_dim)`` → ``(B, N, out_dim)``."""
        x = F.dropout(x, self.dropout, self.training)
        heads = F.elu(self.attention_heads(x, adjacency, mask))  # (B, H, N, hidden)
        x = heads.permute(0, 2, 1, 3).flatten(2)
        x = F.dropout(x, self.dropout, self.training)
        return F.elu(self.out_att(x, adjacency, mask).squeeze(1))
