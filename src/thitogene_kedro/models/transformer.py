"""Pre-norm transformer encoder over the spots of a section (the ViT of THItoGene and HisToGene).

Each block computes  x ← x + Drop(W_o · MHSA(LN(x)))  then  x ← x + FF(LN(x)),
with MHSA(X) = concat_h softmax(Q_h K_hᵀ / √d_h) V_h  (paper Eqs. 9–11), Q, K, V from one
bias-free projection, FF = Drop(W_2 · Drop(GELU(W_1 x))). There is no CLS token and no final
LayerNorm; the sequence is all spots of a section. Attention runs through PyTorch's fused
``scaled_dot_product_attention``; padded spots are masked out as keys.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from thitogene_kedro.models.dropout import Dropout


class PreNorm(nn.Module):
    """``fn(LN(x))``; names follow the reference state dict (``norm``, ``fn``)."""

    def __init__(self, dim: int, fn: nn.Module) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.fn = fn

    def forward(self, x: torch.Tensor, *args: torch.Tensor | None) -> torch.Tensor:
        return self.fn(self.norm(x), *args)


class SelfAttention(nn.Module):
    """Multi-head self-attention with ``heads × head_dim`` inner width."""

    def __init__(self, dim: int, heads: int, head_dim: int, dropout: float, attention_dropout: float) -> None:
        super().__init__()
        self.heads, self.head_dim = heads, head_dim
        self.attention_dropout = attention_dropout
        self.to_qkv = nn.Linear(dim, 3 * heads * head_dim, bias=False)
        self.to_out = nn.Sequential(nn.Linear(heads * head_dim, dim), Dropout(dropout))

    def forward(self, x: torch.Tensor, key_mask: torch.Tensor | None = None) -> torch.Tensor:
        b, n, _ = x.shape
        q, k, v = self.to_qkv(x).view(b, n, 3, self.heads, self.head_dim).permute(2, 0, 3, 1, 4)
        attn_mask = None if key_mask is None else key_mask[:, None, None, :]
        out = F.scaled_dot_product_attention(
            q, k, v, attn_mask=attn_mask, dropout_p=self.attention_dropout if self.training else 0.0
        )
        return self.to_out(out.transpose(1, 2).reshape(b, n, self.heads * self.head_dim))


class FeedForward(nn.Module):
    """``Linear → GELU → Dropout → Linear → Dropout`` (names ``net.0``, ``net.3``)."""

    def __init__(self, dim: int, hidden_dim: int, dropout: float) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(dim, hidden_dim), nn.GELU(), Dropout(dropout), nn.Linear(hidden_dim, dim), Dropout(dropout)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class SpotTransformer(nn.Module):
    """Token dropout, then ``depth`` pre-norm blocks: ``(B, N, dim)`` → ``(B, N, dim)``."""

    def __init__(
        self,
        dim: int,
        *,
        depth: int,
        heads: int,
        head_dim: int,
        mlp_dim: int,
        dropout: float,
        embedding_dropout: float,
        attention_dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.dropout = Dropout(embedding_dropout)
        self.layers = nn.ModuleList(
            nn.ModuleList(
                [
                    PreNorm(dim, SelfAttention(dim, heads, head_dim, dropout, attention_dropout)),
                    PreNorm(dim, FeedForward(dim, mlp_dim, dropout)),
                ]
            )
            for _ in range(depth)
        )

    def forward(self, x: torch.Tensor, key_mask: torch.Tensor | None = None) -> torch.Tensor:
        """``key_mask`` ``(B, N)`` marks real spots; None means no padding (use :func:`padding_mask`)."""
        x = self.dropout(x)
        for attention, feed_forward in self.layers:
            x = attention(x, key_mask) + x
            x = feed_forward(x) + x
        return x


def padding_mask(mask: torch.Tensor) -> torch.Tensor | None:
    """The key mask to pass for a batch: None for a single section (no padding by construction).

    Decided from the shape only, so no device synchronisation is needed.
    """
    return None if mask.shape[0] == 1 else mask
