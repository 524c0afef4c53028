"""Patch encoders: frozen pathology foundation models built with timm from local weights, and the
per-spot features they compute (``docs/encoders.md``)."""

from thitogene_kedro.encoders.frozen import EncoderIdentity, EncoderWeights, FrozenEncoder, load_encoder
from thitogene_kedro.encoders.specs import ENCODERS, EncoderSpec, encoder_spec

__all__ = [
    "ENCODERS",
    "EncoderIdentity",
    "EncoderSpec",
    "EncoderWeights",
    "FrozenEncoder",
    "encoder_spec",
    "load_encoder",
]
