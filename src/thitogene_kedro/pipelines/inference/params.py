"""Validated parameters of the inference pipeline (``conf/base/parameters_inference.yml``)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from thitogene_kedro.encoders.features import FeatureParams


class InferenceParams(BaseModel):
    """Predicting a new slide; see ``docs/inference.md``.

    The slide, its spot table and the model are catalog entries (``inference_image``,
    ``inference_spots``, ``inference_model``) that read the runtime parameters ``inference.image``,
    ``inference.spots`` and ``inference.model`` given with ``--params``; they are not set in the parameter files.
    The four fields below only accept those runtime parameters (``--params`` merges them here);
    ``encoder_weights`` is the local weights file or folder of the frozen encoder a model on
    features was trained on (``inference_encoder_weights``; checked by hash).
    Patch size, padding, orientation, spot graph and position table come from the model.
    ``mpp``: microns per pixel of the new image (None: from its metadata, else ``training_mpp``
    with a warning). ``training_mpp``: the training sections' µm per pixel, stored with the model
    (None: the model's own; set it only for a model file that lacks it). Patches cover the same
    physical size as in training: ``patch_size × training_mpp / mpp`` pixels, resized to the
    model's patch size.
    Without a spot table, spots are laid on a square grid of ``spot_pitch_um`` (÷ ``grid_density``)
    over the tissue found on a thumbnail (Otsu threshold on grey levels and saturation). A grid
    needs the slide's resolution: ``mpp`` or the slide's own metadata, never assumed.
    A model trained on the SYNTHETIC demo is refused on any other slide unless
    ``allow_synthetic_model`` (its genes and expression are made up).
    ``features``: batch size, device and padding of the frozen encoder (models on features).
    Predictions are clamped at 0 (log-normalised expression cannot be negative; the network's raw
    output can dip slightly below), unless ``clamp_at_zero`` is false.
    """

    model_config = ConfigDict(extra="forbid")

    image: str | None = None
    spots: str | None = None
    model: str | None = None
    encoder_weights: str | None = None
    mpp: float | None = Field(None, gt=0)
    training_mpp: float | None = Field(None, gt=0)
    spot_pitch_um: float = Field(200.0, gt=0)
    grid_density: int = Field(1, ge=1, le=4)
    tissue_max_px: int = Field(1000, ge=100)
    map_genes: int | list[str] = 3
    allow_synthetic_model: bool = False
    clamp_at_zero: bool = True
    features: FeatureParams = FeatureParams()
