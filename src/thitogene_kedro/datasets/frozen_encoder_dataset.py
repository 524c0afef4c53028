"""A frozen foundation encoder, loaded from the user's local weights (read-only); at inference, the
weights a registered model on features is checked against."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kedro.io import AbstractDataset, DatasetError

from thitogene_kedro.encoders import EncoderWeights, FrozenEncoder, encoder_spec, load_encoder


class FrozenEncoderDataset(AbstractDataset[None, FrozenEncoder]):
    """``encoder`` (a name in ``thitogene_kedro.encoders.ENCODERS``) with the weights at ``weights``
    (a file, or a folder as the Hugging Face Hub downloads it). ``overrides``: timm keyword
    arguments replacing the card's (a smaller variant of the architecture). Nothing is fetched;
    a missing or mismatched file is an error saying what is expected and where to get it."""

    def __init__(
        self,
        encoder: str,
        weights: str,
        overrides: dict[str, Any] | None = None,
        metadata: dict[str, Any] | None = None,
    ):
        self._spec = encoder_spec(encoder)
        self._weights = weights
        self._overrides = dict(overrides or {})
        self.metadata = metadata

    def load(self) -> FrozenEncoder:
        return load_encoder(self._spec, self._weights, self._overrides)

    def save(self, data: None) -> None:
        raise DatasetError("FrozenEncoderDataset is read-only")

    def _describe(self) -> dict[str, Any]:
        return {"encoder": self._spec.name, "weights": self._weights, "overrides": self._overrides}


class EncoderWeightsDataset(AbstractDataset[None, EncoderWeights]):
    """The local weights file or folder ``weights`` (None or empty: none given), as an
    :class:`~thitogene_kedro.encoders.EncoderWeights` handle: the encoder is built and checked
    against a model's identity only when a model on features asks for it."""

    def __init__(self, weights: str | None = None, metadata: dict[str, Any] | None = None):
        self._weights = weights or None
        self.metadata = metadata

    def load(self) -> EncoderWeights:
        return EncoderWeights(None if self._weights is None else Path(self._weights).expanduser())

    def save(self, data: None) -> None:
        raise DatasetError("EncoderWeightsDataset is read-only")

    def _describe(self) -> dict[str, Any]:
        return {"weights": self._weights}
