"""THItoGene's spatial head on frozen foundation-encoder features.

Per spot: the encoder's ``(D,)`` feature → LayerNorm → Linear to the capsule-token width
(``capsules × capsule_dim``), standing where ODConv + Efficient-CapsNet stand in THItoGene →
token = [image token, E_x, E_y]. Per section: ViT over all spot tokens → multi-head GAT over
the spot graph → gene head, THItoGene's own modules and defaults. The ablation switches that
still mean something apply (``components.vit``, ``components.gat``); the patch encoder is the
frozen one, so there is no ODConv or capsule switch (``docs/encoders.md``).
"""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field
from torch import nn

from thitogene_kedro.models.base import ModelOutput, SpotExpressionModel, StrictConfig
from thitogene_kedro.models.batch import SectionBatch
from thitogene_kedro.models.gat import MultiHeadGAT
from thitogene_kedro.models.heads import thitogene_gene_head
from thitogene_kedro.models.position import PositionEmbedding
from thitogene_kedro.models.thitogene import GATConfig, TransformerConfig
from thitogene_kedro.models.transformer import SpotTransformer, padding_mask


class HeadComponents(StrictConfig):
    """Ablation switches: False removes the ViT (tokens go straight to the GAT) or the GAT (a
    per-spot Linear + ELU instead, no information between neighbours)."""

    vit: bool = True
    gat: bool = True


class SpatialHeadConfig(StrictConfig):
    name: Literal["thitogene_head"] = "thitogene_head"
    n_genes: int = Field(ge=1)
    feature_dim: int = Field(ge=1)  # the encoder's embedding width (from the features)
    position_table_size: int = Field(64, ge=1)
    tokens: int = Field(20, ge=1)  # image token = tokens × token_dim, as THItoGene's 20 capsules × 64
    token_dim: int = Field(64, ge=1)
    feature_dropout: float = Field(0.1, ge=0, lt=1)
    vit: TransformerConfig = TransformerConfig()
    gat: GATConfig = GATConfig()
    head_hidden_dim: int = Field(1024, ge=1)
    components: HeadComponents = HeadComponents()

    @property
    def width(self) -> int:
        """The image token plus the two position tokens: (tokens + 2) × token_dim."""
        return (self.tokens + 2) * self.token_dim


class THItoGeneSpatialHead(SpotExpressionModel):
    """THItoGene's position embedding, ViT, GAT and gene head on frozen features (module docstring)."""

    model_name = "thitogene_head"
    input_kind = "features"

    def __init__(self, config: SpatialHeadConfig) -> None:
        super().__init__(config.n_genes)
        self.config = c = config
        self.projection = nn.Sequential(
            nn.LayerNorm(c.feature_dim), nn.Dropout(c.feature_dropout), nn.Linear(c.feature_dim, c.tokens * c.token_dim)
        )
        self.position = PositionEmbedding(c.position_table_size, c.token_dim)
        if c.components.vit:
            self.vit = SpotTransformer(c.width, **c.vit.model_dump())
        if c.components.gat:
            self.gat = MultiHeadGAT(c.width, **c.gat.model_dump())
        else:
            self.spot_projection = nn.Sequential(nn.Linear(c.width, c.gat.out_dim), nn.ELU())
        self.gene_head = thitogene_gene_head(c.gat.out_dim, c.head_hidden_dim, c.n_genes)

    def forward(self, batch: SectionBatch) -> ModelOutput:
        if batch.features is None:
            raise ValueError("thitogene_head predicts from frozen-encoder features; this batch has patches only")
        mask = batch.mask
        image = self.projection(batch.features)
        x_embedding, y_embedding = self.position(batch.positions)
        tokens = torch.cat([image, x_embedding.to(image.dtype), y_embedding.to(image.dtype)], dim=-1)
        if self.config.components.vit:
            tokens = self.vit(tokens, padding_mask(mask))
        hidden = (
            self.gat(tokens, batch.edge_index, mask) if self.config.components.gat else self.spot_projection(tokens)
        )
        return ModelOutput(prediction=self.gene_head(hidden).masked_fill(~mask[..., None], 0.0))
