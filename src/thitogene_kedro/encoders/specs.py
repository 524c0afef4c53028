"""The supported foundation encoders, each as its model card specifies it.

Each :class:`EncoderSpec` is what the model card says a user must pass to ``timm.create_model``
to load the published weights (architecture and keyword arguments), the input the weights were
trained on (pixels, µm per pixel, mean and standard deviation) and how the card pools the tokens
into one embedding. Nothing is downloaded: the weights are a local file the user fetched from
``source`` (``docs/encoders.md``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

Pooling = Literal["cls", "cls+mean_patch"]


@dataclass(frozen=True)
class EncoderSpec:
    """One encoder: how timm builds it, what input it expects, how its embedding is pooled.

    ``pooling``: ``cls`` — the class token after the final norm (timm's ``global_pool='token'``);
    ``cls+mean_patch`` — the class token concatenated with the mean of the patch tokens (register
    tokens excluded), as the Virchow cards specify.
    """

    name: str
    title: str
    architecture: str
    timm_kwargs: Mapping[str, Any]
    input_px: int
    mpp: float
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    pooling: Pooling
    source: str
    weights_file: str
    licence: str
    gated: bool
    notes: str = ""
    # timm keyword arguments given as names (classes are resolved when the model is built)
    layer_kwargs: Mapping[str, str] = field(default_factory=dict)

    @property
    def field_um(self) -> float:
        """The tissue width one input patch covers, in µm."""
        return self.input_px * self.mpp

    def how_to_get(self) -> str:
        """One sentence: where the weights come from and whether access must be requested."""
        gate = "gated: request access on the model page first, then " if self.gated else ""
        return f"{self.title} weights: {self.source} ({gate}download {self.weights_file})"


_VIT_LARGE_16 = {"img_size": 224, "patch_size": 16, "init_values": 1e-5, "num_classes": 0, "dynamic_img_size": True}
_GIANT_14_SWIGLU = {
    "img_size": 224, "patch_size": 14, "depth": 24, "num_heads": 24, "init_values": 1e-5, "embed_dim": 1536,
    "mlp_ratio": 2.66667 * 2, "num_classes": 0, "no_embed_class": True, "reg_tokens": 8, "dynamic_img_size": True,
}  # fmt: skip
_VIRCHOW = {"img_size": 224, "init_values": 1e-5, "num_classes": 0, "mlp_ratio": 5.3375, "global_pool": "",
            "dynamic_img_size": True}  # fmt: skip
_SWIGLU_SILU = {"mlp_layer": "SwiGLUPacked", "act_layer": "SiLU"}

ENCODERS: dict[str, EncoderSpec] = {
    spec.name: spec
    for spec in (
        EncoderSpec(
            "uni", "UNI (ViT-L/16)", "vit_large_patch16_224", _VIT_LARGE_16, 224, 0.5, IMAGENET_MEAN, IMAGENET_STD,
            "cls", "https://huggingface.co/MahmoodLab/UNI", "pytorch_model.bin", "CC-BY-NC-ND-4.0", True,
        ),
        EncoderSpec(
            "uni2_h", "UNI2-h (ViT-H/14, 8 registers)", "vit_giant_patch14_224", _GIANT_14_SWIGLU, 224, 0.5,
            IMAGENET_MEAN, IMAGENET_STD, "cls", "https://huggingface.co/MahmoodLab/UNI2-h", "pytorch_model.bin",
            "CC-BY-NC-ND-4.0", True, layer_kwargs=_SWIGLU_SILU,
        ),
        EncoderSpec(
            "h_optimus_0", "H-optimus-0 (ViT-g/14, 4 registers)", "vit_giant_patch14_reg4_dinov2",
            {"img_size": 224, "init_values": 1e-5, "num_classes": 0, "dynamic_img_size": False}, 224, 0.5,
            (0.707223, 0.578729, 0.703617), (0.211883, 0.230117, 0.177517), "cls",
            "https://huggingface.co/bioptimus/H-optimus-0", "pytorch_model.bin", "Apache-2.0", True,
        ),
        EncoderSpec(
            "virchow", "Virchow (ViT-H/14)", "vit_huge_patch14_224", _VIRCHOW, 224, 0.5, IMAGENET_MEAN, IMAGENET_STD,
            "cls+mean_patch", "https://huggingface.co/paige-ai/Virchow", "pytorch_model.bin", "Apache-2.0", True,
            layer_kwargs=_SWIGLU_SILU,
        ),
        EncoderSpec(
            "virchow2", "Virchow2 (ViT-H/14, 4 registers)", "vit_huge_patch14_224", {**_VIRCHOW, "reg_tokens": 4},
            224, 0.5, IMAGENET_MEAN, IMAGENET_STD, "cls+mean_patch", "https://huggingface.co/paige-ai/Virchow2",
            "pytorch_model.bin", "CC-BY-NC-ND-4.0", True, layer_kwargs=_SWIGLU_SILU,
        ),
        EncoderSpec(
            "conch_v1_5", "CONCH v1.5 (ViT-L/16, 448 px; TITAN's patch encoder)", "vit_large_patch16_224",
            {**_VIT_LARGE_16, "img_size": 448}, 448, 0.5, IMAGENET_MEAN, IMAGENET_STD, "cls",
            "https://huggingface.co/MahmoodLab/TITAN", "conch_v1_5_pytorch_model.bin", "CC-BY-NC-ND-4.0", True,
            notes="CONCH v1 is an open_clip CoCa model, not a timm one, and is not supported.",
        ),
    )
}  # fmt: skip


def encoder_spec(name: str) -> EncoderSpec:
    """The spec called ``name``; an unknown name is an error listing the supported ones."""
    if name not in ENCODERS:
        raise ValueError(f"encoder.name: {name!r} is not a supported encoder; choose one of {sorted(ENCODERS)}")
    return ENCODERS[name]
