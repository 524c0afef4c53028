"""HisToGene (Pang et al., bioRxiv 2021): a ViT over flattened spot patches (``baselines-spec.md`` §1).

token_i = W_p · vec(patch_i) + b + X[x_i] + Y[y_i]  (patch flattened channel-last, 3·112·112 =
37,632 inputs); dropout; ``depth`` pre-norm transformer blocks over the section's spots;
LayerNorm → Linear to the genes. The HER2+ configuration (8 blocks, 785 genes) has 106,648,337
parameters. ``input.scale: raw`` reproduces the reference's 0–255 input, under which the patch
token (std ≈ 98 on real patches) dwarfs the position code (std ≈ 1.4); the default ``unit``
divides by 255.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field
from torch import nn

from thitogene_kedro.models.base import ModelOutput, SpotExpressionModel, StrictConfig, gather_spots, scatter_spots
from thitogene_kedro.models.batch import SectionBatch
from thitogene_kedro.models.heads import layernorm_gene_head
from thitogene_kedro.models.input_step import PixelInput, PixelScale
from thitogene_kedro.models.position import PositionEmbedding
from thitogene_kedro.models.transformer import SpotTransformer, padding_mask


class HisToGeneConfig(StrictConfig):
    name: Literal["histogene"] = "histogene"
    n_genes: int = Field(ge=1)
    patch_size: int = Field(112, ge=1)
    position_table_size: int = Field(64, ge=1)
    input_scale: PixelScale = "unit"
    dim: int = Field(1024, ge=1)
    depth: int = Field(8, ge=1)
    heads: int = Field(16, ge=1)
    head_dim: int = Field(64, ge=1)
    mlp_dim: int = Field(2048, ge=1)
    dropout: float = Field(0.1, ge=0, lt=1)


class HisToGene(SpotExpressionModel):
    """HisToGene; see the module docstring and ``docs/models/histogene.md``."""

    model_name = "histogene"

    def __init__(self, config: HisToGeneConfig) -> None:
        super().__init__(config.n_genes)
        self.config = c = config
        self.input_step = PixelInput(c.input_scale, channels_first=False, patch_size=c.patch_size)
        self.patch_embedding = nn.Linear(3 * c.patch_size**2, c.dim)
        self.position = PositionEmbedding(c.position_table_size, c.dim)
        self.vit = SpotTransformer(
            c.dim, depth=c.depth, heads=c.heads, head_dim=c.head_dim, mlp_dim=c.mlp_dim, dropout=c.dropout,
            embedding_dropout=c.dropout,
        )  # fmt: skip
        self.gene_head = layernorm_gene_head(c.dim, c.n_genes)

    def forward(self, batch: SectionBatch) -> ModelOutput:
        mask = batch.mask
        pixels = self.input_step(gather_spots(batch.patches, mask)).flatten(1)
        tokens = scatter_spots(self.patch_embedding(pixels), mask)
        x_embedding, y_embedding = self.position(batch.positions)
        tokens = tokens + x_embedding.to(tokens.dtype) + y_embedding.to(tokens.dtype)
        hidden = self.vit(tokens, padding_mask(mask))
        return ModelOutput(prediction=self.gene_head(hidden).masked_fill(~mask[..., None], 0.0))
