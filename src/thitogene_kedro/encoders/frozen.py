"""A frozen foundation encoder built with timm from a local weights file.

``load_encoder`` builds the architecture of an :class:`~thitogene_kedro.encoders.specs.EncoderSpec`
(``pretrained=False``: nothing is fetched), loads the user's weights strictly and hashes them; a
missing or mismatched file is one error naming the file the spec expects, its size and keys, and
where to get it. ``FrozenEncoder`` turns uint8 patches into embeddings: resize to the spec's
input, scale to [0, 1], normalise with its mean and std, pool as its card says.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
import yaml
from torch import nn

from thitogene_kedro.encoders.specs import EncoderSpec, encoder_spec
from thitogene_kedro.errors import ProjectError

WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pth", ".pt")
HASH_CHUNK = 1 << 24


@dataclass(frozen=True)
class EncoderIdentity:
    """What a set of features was computed with: the encoder, its weights' SHA-256 and shape."""

    name: str
    weights_sha256: str
    dim: int
    input_px: int
    mpp: float
    overrides: str = ""  # timm keyword overrides (a smaller variant of the architecture), as text

    @property
    def key(self) -> str:
        """``<name>-<first 12 hex digits of the weights hash>``: the feature cache's folder."""
        return f"{self.name}-{self.weights_sha256[:12]}"


def sha256_of(path: Path) -> str:
    """The file's SHA-256, read in 16 MiB chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def weights_file(spec: EncoderSpec, weights: str | Path) -> Path:
    """The weights file ``weights`` names: the file itself, or in a folder (a Hugging Face download)
    the spec's file name, else ``model.safetensors``, else ``pytorch_model.bin``."""
    path = Path(weights).expanduser()
    if path.is_dir():
        candidates = [path / spec.weights_file, path / "model.safetensors", path / "pytorch_model.bin"]
        found = [c for c in candidates if c.is_file()]
        if not found:
            raise FileNotFoundError(
                f"encoder.weights: {path} has no {spec.weights_file} (nor model.safetensors); {spec.how_to_get()}"
            )
        return found[0]
    if not path.is_file():
        raise FileNotFoundError(f"encoder.weights: {path} does not exist; {spec.how_to_get()}")
    if path.suffix not in WEIGHT_SUFFIXES:
        raise ValueError(f"encoder.weights: {path} is not a weights file ({', '.join(WEIGHT_SUFFIXES)})")
    return path


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """A state dict from ``.safetensors`` or a torch file (tensors only: ``weights_only``)."""
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file  # noqa: PLC0415 - comes with timm

        return load_file(str(path))
    state = torch.load(path, map_location="cpu", weights_only=True)
    for key in ("state_dict", "model"):  # training checkpoints nest the weights
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict):
        raise ValueError(f"encoder.weights: {path} holds a {type(state).__name__}, not a state dict")
    return state


def build_architecture(spec: EncoderSpec, overrides: Mapping[str, Any] | None = None) -> nn.Module:
    """The spec's timm model with random weights (``overrides``: keyword arguments replacing the
    card's, e.g. a smaller depth for a test)."""
    import timm  # noqa: PLC0415 - timm on demand

    layers = {"SwiGLUPacked": timm.layers.SwiGLUPacked, "SiLU": nn.SiLU}
    kwargs = {**spec.timm_kwargs, **{k: layers[v] for k, v in spec.layer_kwargs.items()}, **(overrides or {})}
    return timm.create_model(spec.architecture, pretrained=False, **kwargs)


def _mismatch(model: nn.Module, state: Mapping[str, torch.Tensor]) -> list[str]:
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    shapes = [
        f"{k} {tuple(state[k].shape)} ≠ {tuple(v.shape)}"
        for k, v in expected.items()
        if k in state and tuple(state[k].shape) != tuple(v.shape)
    ]
    problems = []
    for label, items in (("missing keys", missing), ("unexpected keys", unexpected), ("shapes", shapes)):
        if items:
            problems.append(f"{len(items)} {label} (e.g. {', '.join(items[:3])})")
    return problems


def load_encoder(spec: EncoderSpec, weights: str | Path, overrides: Mapping[str, Any] | None = None) -> FrozenEncoder:
    """Build ``spec``'s architecture and load ``weights`` strictly; the encoder is frozen (eval mode,
    no gradients)."""
    path = weights_file(spec, weights)
    model = build_architecture(spec, overrides)
    state = read_state_dict(path)
    problems = _mismatch(model, state)
    if problems:
        parameters = sum(p.numel() for p in model.parameters())
        raise ValueError(
            f"encoder.weights: {path} ({path.stat().st_size / 2**20:.0f} MiB) does not fit {spec.name} "
            f"({spec.architecture}, {parameters / 1e6:.1f} M parameters, about {parameters * 4 / 2**20:.0f} MiB in "
            f"float32, {len(model.state_dict())} tensors): {'; '.join(problems)}; {spec.how_to_get()}"
        )
    model.load_state_dict(state, strict=True)
    model.eval().requires_grad_(False)
    identity = EncoderIdentity(
        spec.name, sha256_of(path), _feature_dim(model, spec), spec.input_px, spec.mpp,
        ",".join(f"{k}={v}" for k, v in sorted((overrides or {}).items())),
    )  # fmt: skip
    return FrozenEncoder(spec, model, identity)


def parse_overrides(text: str) -> dict[str, Any]:
    """``EncoderIdentity.overrides`` (``"depth=2,embed_dim=64"``) back as keyword arguments."""
    pairs = [item.split("=", 1) for item in text.split(",") if item]
    return {key: yaml.safe_load(value) for key, value in pairs}


@dataclass(frozen=True)
class EncoderWeights:
    """A local weights file or folder the user names (``inference.encoder_weights``), read only
    when a model on frozen features asks for its encoder (:meth:`encoder_for`)."""

    path: Path | None

    def encoder_for(self, identity: Mapping[str, Any]) -> FrozenEncoder:
        """The encoder a model was trained on (its stored ``EncoderIdentity`` as a dict), built from
        these weights.

        Raises:
            ProjectError: no weights given, or weights whose hash is not the model's (features of
                other weights mean nothing to the model).
        """
        spec = encoder_spec(str(identity["name"]))
        expected = str(identity["weights_sha256"])
        if self.path is None:
            raise ProjectError(
                f"the model predicts from {spec.name} features (weights sha256 {expected[:12]}…): give the weights it "
                f"was trained with, inference.encoder_weights=<file or folder>; {spec.how_to_get()}"
            )
        encoder = load_encoder(spec, self.path, parse_overrides(str(identity.get("overrides", ""))))
        found = encoder.identity.weights_sha256
        if found != expected:
            raise ProjectError(
                f"inference.encoder_weights: {self.path} has sha256 {found[:12]}…, but the model was trained on "
                f"{spec.name} weights with sha256 {expected[:12]}…: features of other weights mean nothing to it; "
                "give the file the model was trained with"
            )
        return encoder


def _feature_dim(model: nn.Module, spec: EncoderSpec) -> int:
    width = int(model.num_features)
    return 2 * width if spec.pooling == "cls+mean_patch" else width


class FrozenEncoder(nn.Module):
    """uint8 ``(B, H, W, 3)`` patches → float32 ``(B, dim)`` embeddings."""

    def __init__(self, spec: EncoderSpec, model: nn.Module, identity: EncoderIdentity) -> None:
        super().__init__()
        self.spec, self.model, self.identity = spec, model, identity
        self.register_buffer("mean", torch.tensor(spec.mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(spec.std).view(1, 3, 1, 1), persistent=False)

    def pixels(self, patches: torch.Tensor) -> torch.Tensor:
        """uint8 ``(B, H, W, 3)`` → normalised float ``(B, 3, input_px, input_px)`` (bilinear,
        antialiased resize where the patches are of another size)."""
        x = patches.permute(0, 3, 1, 2).float().div_(255.0)
        if x.shape[-1] != self.spec.input_px or x.shape[-2] != self.spec.input_px:
            x = F.interpolate(x, size=(self.spec.input_px,) * 2, mode="bilinear", antialias=True, align_corners=False)
        return (x - self.mean) / self.std

    def pool(self, tokens: torch.Tensor) -> torch.Tensor:
        """The card's embedding from the final-norm tokens ``(B, T, D)``."""
        cls = tokens[:, 0]
        if self.spec.pooling == "cls":
            return cls
        return torch.cat([cls, tokens[:, self.model.num_prefix_tokens :].mean(dim=1)], dim=-1)

    @torch.inference_mode()
    def forward(self, patches: torch.Tensor) -> torch.Tensor:
        return self.pool(self.model.forward_features(self.pixels(patches))).float()
