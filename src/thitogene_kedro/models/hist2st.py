"""Hist2ST (Zeng et al., Briefings in Bioinformatics 2022), ``baselines-spec.md`` §2.

Per spot: Conv(3→32, k7, s7) → dropout → ConvMixer × 2 → Conv1×1(32→4) → flatten (1024) + X[x] + Y[y].
Per section: transformer × 8 (MLP width = token width) → GraphSAGE mean layers × 4 over the spot
graph (neighbours within ``max_neighbour_distance`` array units, Hist2ST's ``Grid`` pruning) →
LSTM jumping knowledge (mean over the layers) = h → LayerNorm → Linear = prediction.
Auxiliary heads on h: ZINB (μ, θ, π) and the distillation weight ``coef``.

Loss (training): MSE + ``zinb_weight``·ZINB(raw counts, size factors) + ``distillation.weight``·
MSE(teacher, prediction), where the teacher is the per-spot softmax(coef)-weighted mean of the
predictions for ``distillation.copies`` augmented copies of the section. The HER2+ configuration
has 75,789,833 parameters, 72,325,333 of them on the prediction path.

Options for reference behaviours that change results (correct default first):
``input_scale`` unit | raw; ``distillation.draw`` spot | section (one augmentation draw for the
whole section); ``distillation.stop_gradient`` false (reference: gradients flow through the
teacher too) | true. Spots without neighbours aggregate to zero instead of poisoning the section
with NaN (``graphsage.py``).
"""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field
from torch import nn

from thitogene_kedro.models.augment import AugmentationDraw, augment_patches
from thitogene_kedro.models.base import (
    ModelOutput,
    SpotExpressionModel,
    StrictConfig,
    gather_spots,
    masked_mean,
    scatter_spots,
)
from thitogene_kedro.models.batch import SectionBatch
from thitogene_kedro.models.convmixer import ConvMixerBlock
from thitogene_kedro.models.dropout import Dropout
from thitogene_kedro.models.graphsage import LSTMJumpingKnowledge, MeanNeighbourLayer
from thitogene_kedro.models.heads import ZINBHeads, layernorm_gene_head
from thitogene_kedro.models.input_step import PixelInput, PixelScale
from thitogene_kedro.models.position import PositionEmbedding
from thitogene_kedro.models.transformer import SpotTransformer, padding_mask
from thitogene_kedro.models.zinb import size_factors, zinb_nll


class DistillationConfig(StrictConfig):
    copies: int = Field(5, ge=0)
    weight: float = Field(0.5, ge=0)
    grayscale_p: float = Field(0.1, ge=0, le=1)
    rotation_degrees: float = Field(90.0, ge=0)
    hflip_p: float = Field(0.2, ge=0, le=1)
    draw: AugmentationDraw = "spot"
    stop_gradient: bool = False


class Hist2STConfig(StrictConfig):
    name: Literal["hist2st"] = "hist2st"
    n_genes: int = Field(ge=1)
    patch_size: int = Field(112, ge=1)
    position_table_size: int = Field(64, ge=1)
    input_scale: PixelScale = "unit"
    patch: int = Field(7, ge=1)
    channel: int = Field(32, ge=1)
    down_channels: int = Field(4, ge=1)
    kernel_size: int = Field(5, ge=1)
    convmixer_depth: int = Field(2, ge=0)
    transformer_depth: int = Field(8, ge=1)
    gnn_depth: int = Field(4, ge=1)
    heads: int = Field(16, ge=1)
    head_dim: int = Field(64, ge=1)
    mlp_dim: int = Field(1024, ge=1)
    dropout: float = Field(0.2, ge=0, lt=1)
    max_neighbour_distance: float | None = Field(2.0, gt=0)
    zinb_weight: float = Field(0.25, ge=0)
    distillation: DistillationConfig = DistillationConfig()

    @property
    def dim(self) -> int:
        """Token width: (patch_size // patch)² × down_channels = 1024 in the paper configuration."""
        return (self.patch_size // self.patch) ** 2 * self.down_channels


class Hist2ST(SpotExpressionModel):
    """Hist2ST; see the module docstring and ``docs/models/hist2st.md``."""

    model_name = "hist2st"

    def __init__(self, config: Hist2STConfig) -> None:
        super().__init__(config.n_genes)
        self.config = c = config
        dim = c.dim
        self.input_step = PixelInput(c.input_scale, patch_size=c.patch_size)
        self.patch_embedding = nn.Conv2d(3, c.channel, c.patch, stride=c.patch)
        self.feature_dropout = Dropout(c.dropout)
        self.convmixer = nn.Sequential(*(ConvMixerBlock(c.channel, c.kernel_size) for _ in range(c.convmixer_depth)))
        self.down = nn.Conv2d(c.channel, c.down_channels, 1)
        self.position = PositionEmbedding(c.position_table_size, dim)
        self.transformer = SpotTransformer(
            dim, depth=c.transformer_depth, heads=c.heads, head_dim=c.head_dim, mlp_dim=c.mlp_dim, dropout=c.dropout,
            embedding_dropout=0.0,
        )  # fmt: skip
        self.gnn = nn.ModuleList(MeanNeighbourLayer(dim, dim) for _ in range(c.gnn_depth))
        self.jknet = LSTMJumpingKnowledge(dim)
        self.gene_head = layernorm_gene_head(dim, c.n_genes)
        self.zinb = ZINBHeads(dim, c.n_genes)
        self.coef = nn.Sequential(nn.Linear(dim, dim), nn.ReLU(), nn.Linear(dim, 1))

    def graph(self, batch: SectionBatch) -> torch.Tensor:
        """The adjacency, pruned to neighbours within ``max_neighbour_distance`` (array units)."""
        if self.config.max_neighbour_distance is None:
            return batch.adjacency
        p = batch.positions.float()
        distance2 = ((p[:, :, None, :] - p[:, None, :, :]) ** 2).sum(-1)
        return batch.adjacency & (distance2 <= self.config.max_neighbour_distance**2)

    def encode(self, batch: SectionBatch, pixels: torch.Tensor, adjacency: torch.Tensor) -> torch.Tensor:
        """Float patches ``(M, 3, H, W)`` of the batch's real spots → h ``(B, N, dim)``."""
        mask = batch.mask
        x = self.feature_dropout(self.patch_embedding(pixels))
        tokens = scatter_spots(self.down(self.convmixer(x)).flatten(1), mask)
        x_embedding, y_embedding = self.position(batch.positions)
        tokens = tokens + x_embedding.to(tokens.dtype) + y_embedding.to(tokens.dtype)
        x = self.transformer(tokens, padding_mask(mask))
        layers = []
        for layer in self.gnn:
            x = layer(x, adjacency)
            layers.append(gather_spots(x, mask))
        return scatter_spots(self.jknet(layers), mask)

    def forward(self, batch: SectionBatch) -> ModelOutput:
        """Prediction, ZINB parameters, and the float patches and pruned graph the distillation reuses."""
        mask = batch.mask
        pixels, adjacency = self.input_step(gather_spots(batch.patches, mask)), self.graph(batch)
        h = self.encode(batch, pixels, adjacency)
        extras = {"pixels": pixels, "adjacency": adjacency}
        if self.config.zinb_weight > 0:
            extras |= self.zinb(h)
        return ModelOutput(prediction=self.gene_head(h).masked_fill(~mask[..., None], 0.0), extras=extras)

    def loss_terms(self, batch: SectionBatch, output: ModelOutput) -> dict[str, torch.Tensor]:
        terms = {"mse": self.mse(batch, output)}
        loss = terms["mse"]
        c = self.config
        if c.zinb_weight > 0:
            if batch.counts is None:
                raise ValueError(f"Hist2ST's ZINB loss needs raw counts; sections {batch.section_ids} have none")
            factors = size_factors(batch.counts, batch.mask)
            e = output.extras
            terms["zinb"] = zinb_nll(
                batch.counts, e["zinb_mean"], e["zinb_dispersion"], e["zinb_dropout"], factors, batch.mask
            )
            loss = loss + c.zinb_weight * terms["zinb"]
        d = c.distillation
        if self.training and d.copies > 0 and d.weight > 0:
            terms["distillation"] = self.distillation(batch, output)
            loss = loss + d.weight * terms["distillation"]
        terms["loss"] = loss
        return terms

    def distillation(self, batch: SectionBatch, output: ModelOutput) -> torch.Tensor:
        """MSE between the prediction and the coef-weighted mean over augmented copies."""
        d, mask = self.config.distillation, batch.mask
        pixels, adjacency, prediction = output.extras["pixels"], output.extras["adjacency"], output.prediction
        b, n = mask.shape
        section_index = gather_spots(torch.arange(b, device=mask.device)[:, None].expand(b, n), mask)
        predictions, scores = [], []
        for _ in range(d.copies):
            augmented = augment_patches(pixels, section_index, d.draw, d.grayscale_p, d.rotation_degrees, d.hflip_p)
            h = self.encode(batch, augmented, adjacency)
            predictions.append(self.gene_head(h))
            scores.append(self.coef(h))
        weights = torch.softmax(torch.stack(scores).float(), dim=0)
        teacher = (weights * torch.stack(predictions).float()).sum(dim=0)
        if d.stop_gradient:
            teacher = teacher.detach()
        return masked_mean((teacher - prediction.float()) ** 2, mask)
