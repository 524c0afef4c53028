"""A frozen foundation encoder, loaded from the user's local weights (read-only)."""

from __future__ import annotations

from typing import Any

from kedro.io import AbstractDataset, DatasetError

from thitogene_kedro.encoders import FrozenEncoder, encoder_spec, load_encoder


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
