"""Learned x/y position embeddings indexed by integer array coordinates.

E_x = X[x], E_y = Y[y] with tables of ``table_size`` rows (paper Eq. 8). THItoGene concatenates
them with the capsules as two extra 64-d tokens; HisToGene and Hist2ST add them to the patch token.
"""

from __future__ import annotations

import torch
from torch import nn


class PositionEmbedding(nn.Module):
    """Two ``Embedding(table_size, dim)`` tables; attribute names follow the reference state dicts."""

    def __init__(self, table_size: int, dim: int) -> None:
        super().__init__()
        self.table_size = table_size
        self.x_embed = nn.Embedding(table_size, dim)
        self.y_embed = nn.Embedding(table_size, dim)

    def forward(self, positions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(..., 2)`` integer ``(x, y)`` → ``(E_x, E_y)``, each ``(..., dim)``.

        Raises:
            ValueError: a coordinate is negative or does not fit the table.
        """
        if positions.device.type != "meta":
            low, high = int(positions.min()), int(positions.max())
            if low < 0 or high >= self.table_size:
                raise ValueError(
                    f"array coordinates span {low}..{high}, outside the position table 0..{self.table_size - 1}; "
                    "raise the model's position table size"
                )
        return self.x_embed(positions[..., 0]), self.y_embed(positions[..., 1])
