"""The interface every model implements: a batch of sections in, per-spot predictions out.

Training and evaluation only ever call ``model(batch)`` and ``model.loss_terms(batch, output)``;
models that need extra loss terms (Hist2ST's ZINB and self-distillation) add them there, so no
caller special-cases a model.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar, Literal

import torch
from pydantic import BaseModel, ConfigDict
from torch import nn

from thitogene_kedro.models.batch import SectionBatch


class StrictConfig(BaseModel):
    """Base of every model configuration: unknown keys are errors that name them."""

    model_config = ConfigDict(extra="forbid")


@dataclasses.dataclass
class ModelOutput:
    """``prediction``: ``(B, N, G)`` predicted normalised expression (padded spots are zero).

    ``extras``: named auxiliary tensors a model's own loss needs (e.g. ZINB parameters).
    """

    prediction: torch.Tensor
    extras: dict[str, torch.Tensor] = dataclasses.field(default_factory=dict)


def masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of ``(B, N, ...)`` values over the real spots (``mask`` ``(B, N)``) and trailing axes."""
    keep = mask.reshape(*mask.shape, *([1] * (values.dim() - mask.dim())))
    count = mask.sum() * values[0, 0].numel()
    return torch.where(keep, values, 0.0).sum() / count.clamp_min(1)


def gather_spots(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``(B, N, ...)`` → ``(M, ...)``: the M real spots, section by section.

    A single section has no padding, so it is taken as is (no boolean indexing, no device sync).
    """
    return values[0] if mask.shape[0] == 1 else values[mask]


def scatter_spots(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``(M, ...)`` → ``(B, N, ...)``: inverse of :func:`gather_spots`; padded spots are zero."""
    if mask.shape[0] == 1:
        return values[None]
    out = values.new_zeros((*mask.shape, *values.shape[1:]))
    out[mask] = values
    return out


class SpotExpressionModel(nn.Module):
    """Base class: per-spot gene expression from a :class:`SectionBatch`."""

    model_name: ClassVar[str] = ""
    # what a spot is given as: uint8 patches, or the features of a frozen encoder (docs/encoders.md)
    input_kind: ClassVar[Literal["patches", "features"]] = "patches"

    def __init__(self, n_genes: int) -> None:
        super().__init__()
        self.n_genes = n_genes

    def forward(self, batch: SectionBatch) -> ModelOutput:  # pragma: no cover - abstract
        raise NotImplementedError

    def loss_terms(self, batch: SectionBatch, output: ModelOutput) -> dict[str, torch.Tensor]:
        """Named loss terms and their weighted sum under ``"loss"``; the default is MSE only.

        The MSE averages over all real spots × genes, which for one section is the reference
        ``F.mse_loss`` over N×G (``reference-spec.md`` §1.6).
        """
        mse = self.mse(batch, output)
        return {"mse": mse, "loss": mse}

    @staticmethod
    def mse(batch: SectionBatch, output: ModelOutput) -> torch.Tensor:
        if batch.targets is None:
            raise ValueError(f"sections {batch.section_ids} have no targets; a loss needs them")
        return masked_mean((output.prediction.float() - batch.targets) ** 2, batch.mask)
