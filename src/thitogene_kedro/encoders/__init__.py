"""Patch encoders: frozen pathology foundation models built with timm from local weights, and the
per-spot features they compute (``docs/encoders.md``)."""

from thitogene_kedro.encoders.frozen import EncoderIdentity, FrozenEncoder, load_encoder
from thitogene_kedro.encoders.specs import ENCODERS, EncoderSpec, encoder_spec

__all__ = ["ENCODERS", "EncoderIdentity", "EncoderSpec", "FrozenEncoder", "encoder_spec", "load_encoder"]
