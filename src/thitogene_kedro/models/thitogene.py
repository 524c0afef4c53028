"""THItoGene (Jia et al., Briefings in Bioinformatics 2023): the model and its configuration.

Per spot: uint8 patch → input step → ODConv (+ReLU) → Efficient-CapsNet (20 capsules × 64) →
token = [capsules, E_x, E_y] (22 × 64 = 1408). Per section: ViT over all spot tokens → multi-head
GAT over the spot graph → gene head. The defaults are the paper's HER2+ configuration
(``reference-spec.md`` §1.2, 63,586,712 parameters with 785 genes); reference quirks that change
results are options whose defaults are the correct behaviour (see ``docs/models/thitogene.md``).

Ablations (paper Figure 3) switch components off:

- ``components.odconv: false`` — a plain Conv2d of the same shape (3→16, k4, s4, no bias);
- ``components.capsnet: false`` — the flattened ODConv map is projected linearly to the
  capsule token width (20·64);
- ``components.vit: false`` — tokens go straight to the GAT;
- ``components.gat: false`` — a per-spot Linear(1408→512) + ELU replaces the GAT, so no
  information flows between neighbours there.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import Field, model_validator
from torch import nn

from thitogene_kedro.models.base import ModelOutput, SpotExpressionModel, StrictConfig, gather_spots, scatter_spots
from thitogene_kedro.models.batch import SectionBatch
from thitogene_kedro.models.capsnet import CapsuleEncoder, conv_output_size
from thitogene_kedro.models.gat import Implementation, MultiHeadGAT, SoftmaxAxis
from thitogene_kedro.models.heads import thitogene_gene_head
from thitogene_kedro.models.input_step import PixelInput, PixelScale
from thitogene_kedro.models.odconv import ODConv2d
from thitogene_kedro.models.position import PositionEmbedding
from thitogene_kedro.models.transformer import SpotTransformer, padding_mask


class InputConfig(StrictConfig):
    """``scale``: ``unit`` (pixels / 255, default) or ``raw`` (0–255 floats, the reference)."""

    scale: PixelScale = "unit"


class ODConvConfig(StrictConfig):
    out_channels: int = Field(16, ge=1)
    kernel_size: int = Field(4, ge=1)
    stride: int = Field(4, ge=1)
    kernel_num: int = Field(4, ge=1)
    reduction: float = Field(0.0625, gt=0)
    min_attention_channels: int = Field(16, ge=1)
    temperature: float = Field(1.0, gt=0)


class CapsNetConfig(StrictConfig):
    stem_channels: list[int] = [32, 64, 64, 128]
    stem_kernels: list[int] = [5, 3, 3, 3]
    stem_strides: list[int] = [1, 1, 1, 2]
    primary_capsules: int = Field(16, ge=1)
    primary_dim: int = Field(8, ge=1)
    capsules: int = Field(20, ge=1)
    capsule_dim: int = Field(64, ge=1)


class TransformerConfig(StrictConfig):
    depth: int = Field(4, ge=1)
    heads: int = Field(16, ge=1)
    head_dim: int = Field(64, ge=1)
    mlp_dim: int = Field(2048, ge=1)
    dropout: float = Field(0.2, ge=0, lt=1)
    embedding_dropout: float = Field(0.2, ge=0, lt=1)
    attention_dropout: float = Field(0.0, ge=0, lt=1)


class GATConfig(StrictConfig):
    """``softmax_axis``/``self_loops``: ``neighbours``/True is standard GAT; ``receivers``/False the reference.

    ``implementation`` (``neighbour_list`` | ``dense``) changes cost only, never the result.
    """

    heads: int = Field(8, ge=1)
    hidden_dim: int = Field(1024, ge=1)
    out_dim: int = Field(512, ge=1)
    dropout: float = Field(0.2, ge=0, lt=1)
    leaky_relu_slope: float = Field(0.01, ge=0)
    softmax_axis: SoftmaxAxis = "neighbours"
    self_loops: bool = True
    implementation: Implementation = "neighbour_list"


class ComponentsConfig(StrictConfig):
    """Ablation switches: False removes the named component (module docstring)."""

    odconv: bool = True
    capsnet: bool = True
    vit: bool = True
    gat: bool = True


class THItoGeneConfig(StrictConfig):
    name: Literal["thitogene"] = "thitogene"
    n_genes: int = Field(ge=1)
    patch_size: int = Field(112, ge=8)
    position_table_size: int = Field(64, ge=1)
    input: InputConfig = InputConfig()
    odconv: ODConvConfig = ODConvConfig()
    capsnet: CapsNetConfig = CapsNetConfig()
    vit: TransformerConfig = TransformerConfig()
    gat: GATConfig = GATConfig()
    head_hidden_dim: int = Field(1024, ge=1)
    components: ComponentsConfig = ComponentsConfig()

    @model_validator(mode="after")
    def _check_capsules(self) -> THItoGeneConfig:
        if (
            self.components.capsnet
            and self.capsnet.primary_capsules * self.capsnet.primary_dim != (self.capsnet.stem_channels[-1])
        ):
            raise ValueError("capsnet.primary_capsules × capsnet.primary_dim must equal capsnet.stem_channels[-1]")
        return self

    @property
    def token_dim(self) -> int:
        """Capsule tokens plus the two position tokens: (capsules + 2) × capsule_dim."""
        return (self.capsnet.capsules + 2) * self.capsnet.capsule_dim


class THItoGene(SpotExpressionModel):
    """THItoGene; see the module docstring and ``docs/models/thitogene.md``."""

    model_name = "thitogene"

    def __init__(self, config: THItoGeneConfig) -> None:
        super().__init__(config.n_genes)
        self.config = c = config
        self.input_step = PixelInput(c.input.scale, patch_size=c.patch_size, channels_last_memory=True)
        o = c.odconv
        if c.components.odconv:
            self.odconv2d = ODConv2d(
                3, o.out_channels, o.kernel_size, stride=o.stride, padding=0, kernel_num=o.kernel_num,
                reduction=o.reduction, min_channels=o.min_attention_channels, temperature=o.temperature,
            )  # fmt: skip
        else:
            self.conv2d = nn.Conv2d(3, o.out_channels, o.kernel_size, o.stride, bias=False)
            nn.init.kaiming_normal_(self.conv2d.weight, mode="fan_out", nonlinearity="relu")
        feature_size = conv_output_size(c.patch_size, o.kernel_size, o.stride)
        caps = c.capsnet
        if c.components.capsnet:
            self.caps_layer = CapsuleEncoder(o.out_channels, feature_size, **caps.model_dump())
        else:
            self.patch_projection = nn.Linear(o.out_channels * feature_size**2, caps.capsules * caps.capsule_dim)
        self.position = PositionEmbedding(c.position_table_size, caps.capsule_dim)
        v = c.vit
        if c.components.vit:
            self.vit = SpotTransformer(c.token_dim, **v.model_dump())
        g = c.gat
        if c.components.gat:
            self.gat = MultiHeadGAT(c.token_dim, **g.model_dump())
        else:
            self.spot_projection = nn.Sequential(nn.Linear(c.token_dim, g.out_dim), nn.ELU())
        self.gene_head = thitogene_gene_head(g.out_dim, c.head_hidden_dim, c.n_genes)

    def encode_patches(self, patches: torch.Tensor) -> torch.Tensor:
        """``(M, H, W, 3)`` uint8 → ``(M, capsules·capsule_dim)`` image features."""
        x = self.input_step(patches)
        x = F.relu(self.odconv2d(x) if self.config.components.odconv else self.conv2d(x))
        if self.config.components.capsnet:
            return self.caps_layer(x).flatten(1)
        return self.patch_projection(x.flatten(1))

    def forward(self, batch: SectionBatch) -> ModelOutput:
        mask = batch.mask
        features = scatter_spots(self.encode_patches(gather_spots(batch.patches, mask)), mask)
        x_embedding, y_embedding = self.position(batch.positions)
        tokens = torch.cat([features, x_embedding.to(features.dtype), y_embedding.to(features.dtype)], dim=-1)
        if self.config.components.vit:
            tokens = self.vit(tokens, padding_mask(mask))
        if self.config.components.gat:
            hidden = self.gat(tokens, batch.edge_index, mask)
        else:
            hidden = self.spot_projection(tokens)
        prediction = self.gene_head(hidden).masked_fill(~mask[..., None], 0.0)
        return ModelOutput(prediction=prediction)
