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

Two implementations give the same result (tested) and differ only in cost:

- ``neighbour_list`` (default): logits, softmax and aggregation over the E edges only (a
  segment softmax and one sparse × dense product per head, with a backward computed edge by
  edge); memory O(E·heads + N·heads·out) in both passes, so a 5,000-spot Visium section needs no
  N×N tensor.
- ``dense``: the reference's N×N logit matrix with −9e15 for non-edges; O(N²·heads) memory.

The dense formulation's corner cases are reproduced exactly by the neighbour list: a spot with no
edge at all in its softmax group gets uniform weights over its section's real spots (all its
logits are −9e15), and those weights are dropped out like any other (tested). Padded spots (``mask`` False) never contribute to or receive attention.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from thitogene_kedro.models.batch import dense_adjacency
from thitogene_kedro.models.dropout import dropout

SoftmaxAxis = Literal["neighbours", "receivers"]
Implementation = Literal["neighbour_list", "dense"]

NON_EDGE_LOGIT = -9e15  # the reference's mask value
PADDING_LOGIT = -1e30  # below any non-edge, so padded spots get exactly zero weight


def graph_edges(edge_index: torch.Tensor, mask: torch.Tensor, self_loops: bool) -> torch.Tensor:
    """Distinct ``(2, E)`` edges sorted by receiving spot, with a self-loop per real spot if asked."""
    flat_mask = mask.reshape(-1)
    if self_loops:
        real = torch.nonzero(flat_mask).squeeze(1)
        edge_index = torch.cat([edge_index, real.expand(2, -1)], dim=1)
    keys = torch.unique(edge_index[0] * flat_mask.numel() + edge_index[1])  # sorted, distinct
    return torch.stack([keys // flat_mask.numel(), keys % flat_mask.numel()])


def segment_softmax(logits: torch.Tensor, segments: torch.Tensor, n_segments: int) -> torch.Tensor:
    """Softmax of ``(H, E)`` logits within each segment id of ``segments`` ``(E,)``."""
    index = segments.expand_as(logits)
    shift = torch.full((logits.shape[0], n_segments), -torch.inf, dtype=logits.dtype, device=logits.device)
    shift = shift.scatter_reduce(1, index, logits.detach(), "amax", include_self=True)
    weights = torch.exp(logits - shift.gather(1, index))
    totals = torch.zeros_like(shift).scatter_add(1, index, weights)
    return weights / totals.gather(1, index)


def sparse_aggregate(edges: torch.Tensor, alpha: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """``out[i, h] = Σ_(i,j)∈edges alpha[h, e] · values[j, h]``, in float32, O(E·H·D) forward and backward.

    ``edges`` must be sorted and distinct (:func:`graph_edges`); ``values`` is ``(S, H, D)``. PyTorch's
    own backward of a sparse × dense product forms the dense ``S × S`` product before masking it to
    the edges, so the gradient of α is computed here edge by edge instead.
    """
    with torch.autocast(values.device.type, enabled=False):  # float32 throughout (autocast mixes dtypes)
        return _EdgeAggregation.apply(alpha.float(), values.float(), edges)


def _aggregate(edges: torch.Tensor, alpha: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """``out[i, h] = Σ_(i,j)∈edges alpha[h, e] · values[j, h]``: one sparse × dense product per head.

    ``edges`` must be sorted by (i, j) and distinct (a coalesced sparse matrix); no autograd.
    """
    spots = values.shape[0]
    heads = [
        torch.sparse.mm(
            torch.sparse_coo_tensor(edges, weights, (spots, spots), is_coalesced=True, check_invariants=False),
            values[:, h],
        )
        for h, weights in enumerate(alpha)
    ]
    return torch.stack(heads, dim=1)


class _EdgeAggregation(torch.autograd.Function):
    @staticmethod
    def forward(ctx, alpha: torch.Tensor, values: torch.Tensor, edges: torch.Tensor) -> torch.Tensor:  # noqa: ANN001
        ctx.save_for_backward(alpha, values, edges)
        return _aggregate(edges, alpha, values)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor | None, None]:  # noqa: ANN001
        alpha, values, edges = ctx.saved_tensors
        receivers, neighbours = edges
        grad_alpha = grad_values = None
        if ctx.needs_input_grad[0]:  # ∂/∂α[h, e] = ⟨grad[i_e, h], values[j_e, h]⟩
            grad_alpha = torch.stack(
                [torch.linalg.vecdot(grad[receivers, h], values[neighbours, h]) for h in range(alpha.shape[0])]
            )
        if ctx.needs_input_grad[1]:  # ∂/∂values[j, h] = Σ_(i,j) α[h, e] · grad[i, h]: the transposed product
            order = torch.argsort(neighbours * values.shape[0] + receivers)
            grad_values = _aggregate(edges.flip(0)[:, order], alpha[:, order], grad)
        return grad_alpha, grad_values, None


class GraphAttention(nn.Module):
    """``heads`` graph-attention heads in parallel: ``(B, N, D)`` → ``(B, N, heads, out_dim)``."""

    def __init__(
        self,
        in_dim: int,
        out_dim: int,
        heads: int,
        *,
        dropout: float,
        leaky_relu_slope: float,
        softmax_axis: SoftmaxAxis,
        self_loops: bool,
        implementation: Implementation = "neighbour_list",
    ) -> None:
        super().__init__()
        self.out_dim, self.slope, self.dropout = out_dim, leaky_relu_slope, dropout
        self.softmax_axis, self.self_loops, self.implementation = softmax_axis, self_loops, implementation
        # W is (heads, out, in), the reference's per-head (in, out) matrices transposed: all heads are
        # one GEMM laid out as nn.Linear's, whose weight gradient is the faster Gᵀ·H product on CPU
        self.W = nn.Parameter(torch.empty(heads, out_dim, in_dim))
        self.a = nn.Parameter(torch.empty(heads, 2 * out_dim, 1))
        with torch.no_grad():
            for h in range(heads):  # the reference's per-head xavier_uniform(gain=1.414) of an (in, out) matrix
                self.W[h] = nn.init.xavier_uniform_(torch.empty(in_dim, out_dim), gain=1.414).t()
                nn.init.xavier_uniform_(self.a[h], gain=1.414)

    def attention(self, wh: torch.Tensor, adjacency: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Dense ``(B, heads, N, N)`` float32 attention coefficients α_ij (before dropout)."""
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

    def forward(self, h: torch.Tensor, edge_index: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """``h`` ``(B, N, D)``, ``edge_index`` ``(2, E)`` ``[spot, neighbour]`` over the flattened B·N spots."""
        if self.implementation == "dense":
            wh = self.project(h).permute(0, 2, 1, 3)  # (B, H, N, out)
            alpha = self.attention(wh, dense_adjacency(edge_index, mask), mask)
            alpha = dropout(alpha, self.dropout, self.training)
            return (alpha.to(wh.dtype) @ wh).transpose(1, 2)
        return self._neighbour_list(h, edge_index, mask)

    def project(self, h: torch.Tensor) -> torch.Tensor:
        """``W h`` for all heads: ``(B, N, in)`` → ``(B, N, heads, out)``."""
        return F.linear(h, self.W.view(-1, self.W.shape[-1])).view(*h.shape[:-1], *self.W.shape[:2])

    def _neighbour_list(self, h: torch.Tensor, edge_index: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        b, n, _ = h.shape
        heads, spots = self.W.shape[0], b * n
        wh = self.project(h).view(spots, heads, self.out_dim)
        # a₁ᵀ W h_i and a₂ᵀ W h_j in one product: (2, H, B·N)
        source, target = torch.einsum("sho,hto->ths", wh, self.a.view(heads, 2, self.out_dim))
        receivers, neighbours = graph_edges(edge_index, mask, self.self_loops)
        logits = F.leaky_relu((source[:, receivers] + target[:, neighbours]).float(), self.slope)  # (H, E)
        grouped_by = receivers if self.softmax_axis == "neighbours" else neighbours
        edges, alpha = torch.stack([receivers, neighbours]), segment_softmax(logits, grouped_by, spots)
        empty = mask.reshape(-1) & (torch.bincount(grouped_by, minlength=spots) == 0)
        if bool(empty.any()):  # never in a k-nearest-spot graph with self-loops
            edges, alpha = self._with_uniform_fallback(edges, alpha, empty, mask)
        alpha = dropout(alpha, self.dropout, self.training)  # on every weight the dense softmax has
        return sparse_aggregate(edges, alpha, wh).to(wh.dtype).view(b, n, heads, self.out_dim)

    def _with_uniform_fallback(
        self, edges: torch.Tensor, alpha: torch.Tensor, empty: torch.Tensor, mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Add what the dense softmax gives a real spot whose softmax group has no edge: uniform weights.

        ``neighbours``: a spot with no neighbours takes 1/n of each of its section's n spots.
        ``receivers``: a spot listed by nobody gives 1/n of its features to every spot of its section.
        The weights join the edge list before attention dropout, so each is dropped as the dense
        formulation drops it. ``empty`` ``(B·N,)`` marks the real spots whose softmax group has no edge;
        returns the sorted ``(2, E')`` edges and their ``(H, E')`` weights.
        """
        n = mask.shape[1]
        real, unlisted = torch.nonzero(mask.reshape(-1)).squeeze(1), torch.nonzero(empty).squeeze(1)
        pair_empty, pair_real = torch.nonzero(unlisted[:, None] // n == real[None, :] // n, as_tuple=True)
        pair_empty, pair_real = unlisted[pair_empty], real[pair_real]
        added = torch.stack([pair_empty, pair_real] if self.softmax_axis == "neighbours" else [pair_real, pair_empty])
        weights = 1.0 / mask.sum(1)[pair_empty // n].to(alpha.dtype)
        edges = torch.cat([edges, added], dim=1)
        alpha = torch.cat([alpha, weights.expand(alpha.shape[0], -1)], dim=1)
        order = torch.argsort(edges[0] * mask.numel() + edges[1])
        return edges[:, order], alpha[:, order]

    def extra_repr(self) -> str:
        return (
            f"softmax_axis={self.softmax_axis!r}, self_loops={self.self_loops}, slope={self.slope}, "
            f"implementation={self.implementation!r}"
        )


class MultiHeadGAT(nn.Module):
    """Dropout → ``heads`` × GAT(in→hidden) + ELU, concatenated → dropout → GAT(→out) → ELU."""

    def __init__(
        self,
        in_dim: int,
        hidden_dim: int,
        out_dim: int,
        *,
        heads: int,
        dropout: float,
        leaky_relu_slope: float,
        softmax_axis: SoftmaxAxis,
        self_loops: bool,
        implementation: Implementation = "neighbour_list",
    ) -> None:
        super().__init__()
        self.dropout = dropout
        options = {"leaky_relu_slope": leaky_relu_slope, "dropout": dropout}
        options |= {"softmax_axis": softmax_axis, "self_loops": self_loops, "implementation": implementation}
        self.attention_heads = GraphAttention(in_dim, hidden_dim, heads, **options)
        self.out_att = GraphAttention(heads * hidden_dim, out_dim, 1, **options)

    def forward(self, x: torch.Tensor, edge_index: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """``(B, N, in_dim)`` → ``(B, N, out_dim)``."""
        x = dropout(x, self.dropout, self.training)
        x = F.elu(self.attention_heads(x, edge_index, mask)).flatten(2)  # heads concatenated
        x = dropout(x, self.dropout, self.training)
        return F.elu(self.out_att(x, edge_index, mask).squeeze(2))
