"""Frozen encoders: every supported architecture, randomly initialised in a small variant and saved
as a local weights file, goes through the real loading path and computes what timm computes."""

from __future__ import annotations

import numpy as np
import pytest
import timm
import torch
from safetensors.torch import save_file

from thitogene_kedro.encoders import ENCODERS, EncoderWeights, encoder_spec, load_encoder
from thitogene_kedro.encoders.frozen import build_architecture, parse_overrides, sha256_of
from thitogene_kedro.errors import ProjectError

# A smaller variant of each architecture (same blocks, layers, registers and pooling): what the
# cards' weights load into, at a size a test can build.
SMALL = {"depth": 1, "embed_dim": 48, "num_heads": 2}


def small_weights(tmp_path, name: str, suffix: str = ".bin") -> tuple[torch.nn.Module, object]:
    """A randomly initialised small variant of ``name`` and the file its weights are saved in."""
    torch.manual_seed(0)
    model = build_architecture(encoder_spec(name), SMALL)
    path = tmp_path / f"{name}{suffix}"
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    save_file(state, path) if suffix == ".safetensors" else torch.save(state, path)
    return model, path


def card_embedding(name: str, model: torch.nn.Module, pixels: torch.Tensor) -> torch.Tensor:
    """The embedding as each model card computes it with timm."""
    spec = encoder_spec(name)
    x = (pixels.permute(0, 3, 1, 2).float() / 255 - torch.tensor(spec.mean).view(1, 3, 1, 1)) / torch.tensor(
        spec.std
    ).view(1, 3, 1, 1)
    with torch.inference_mode():
        output = model.eval()(x)
    if spec.pooling == "cls":
        return output  # num_classes=0, global_pool='token': the class token after the final norm
    return torch.cat([output[:, 0], output[:, model.num_prefix_tokens :].mean(1)], dim=-1)  # Virchow cards


@pytest.mark.parametrize("name", sorted(ENCODERS))
def test_each_encoder_loads_local_weights_and_computes_what_timm_computes(tmp_path, name):
    spec = encoder_spec(name)
    reference, path = small_weights(tmp_path, name, ".safetensors" if name == "uni" else ".bin")
    encoder = load_encoder(spec, path, SMALL)
    pixels = torch.from_numpy(np.random.default_rng(1).integers(0, 256, (2, spec.input_px, spec.input_px, 3), np.uint8))
    features = encoder(pixels)
    assert features.shape == (2, encoder.identity.dim) and features.dtype == torch.float32
    torch.testing.assert_close(features, card_embedding(name, reference, pixels), rtol=1e-5, atol=1e-5)
    assert encoder.identity.weights_sha256 == sha256_of(path) and encoder.identity.key.startswith(f"{name}-")
    assert not any(p.requires_grad for p in encoder.parameters()) and not encoder.model.training
    if spec.pooling == "cls+mean_patch":
        assert encoder.identity.dim == 2 * SMALL["embed_dim"]


def test_the_architectures_are_the_cards(tmp_path):
    """At full size, the specs build the published shapes (parameter counts, embedding widths)."""
    with torch.device("meta"):
        widths = {name: build_architecture(encoder_spec(name)).num_features for name in ("uni", "uni2_h", "virchow2")}
        prefix = {name: build_architecture(encoder_spec(name)).num_prefix_tokens for name in ("uni2_h", "virchow2")}
    assert widths == {"uni": 1024, "uni2_h": 1536, "virchow2": 1280} and prefix == {"uni2_h": 9, "virchow2": 5}
    assert timm.list_models(encoder_spec("h_optimus_0").architecture)


def test_resized_patches_are_resized_to_the_encoders_input(tmp_path):
    _, path = small_weights(tmp_path, "uni")
    encoder = load_encoder(encoder_spec("uni"), path, SMALL)
    small = torch.full((1, 112, 112, 3), 200, dtype=torch.uint8)
    assert encoder.pixels(small).shape == (1, 3, 224, 224)
    torch.testing.assert_close(encoder(small), encoder(torch.full((1, 224, 224, 3), 200, dtype=torch.uint8)))


def test_a_missing_or_mismatched_weights_file_is_one_error_naming_what_is_expected(tmp_path):
    spec = encoder_spec("uni")
    with pytest.raises(
        FileNotFoundError,
        match=r"does not exist; UNI \(ViT-L/16\) weights: https://huggingface.co/MahmoodLab/UNI \(gated",
    ):
        load_encoder(spec, tmp_path / "nope.bin", SMALL)
    (tmp_path / "folder").mkdir()
    with pytest.raises(FileNotFoundError, match=r"has no pytorch_model.bin"):
        load_encoder(spec, tmp_path / "folder", SMALL)
    _, virchow = small_weights(tmp_path, "virchow2")  # another architecture's weights
    with pytest.raises(
        ValueError, match=r"does not fit uni \(vit_large_patch16_224.*missing keys|does not fit uni.*unexpected keys"
    ) as error:
        load_encoder(spec, virchow, SMALL)
    assert "MiB in float32" in str(error.value) and "https://huggingface.co/MahmoodLab/UNI" in str(error.value)
    _, uni = small_weights(tmp_path, "uni")
    with pytest.raises(ValueError, match=r"shapes \(e.g. "):
        load_encoder(spec, uni, {**SMALL, "embed_dim": 64})
    with pytest.raises(
        ValueError, match=r"encoder.name: 'nope' is not a supported encoder; choose one of \['conch_v1_5'"
    ):
        encoder_spec("nope")


def test_a_weights_folder_as_hugging_face_downloads_it_is_accepted(tmp_path):
    _, path = small_weights(tmp_path, "uni")
    folder = tmp_path / "UNI"
    folder.mkdir()
    path.rename(folder / "pytorch_model.bin")
    assert load_encoder(encoder_spec("uni"), folder, SMALL).identity.dim == SMALL["embed_dim"]


def test_a_models_encoder_is_rebuilt_from_its_identity_and_only_from_its_own_weights(tmp_path):
    """At inference the encoder comes from the identity stored with the model (name, architecture
    overrides) and the user's file; another file, or none, is refused naming the hashes."""
    _, weights = small_weights(tmp_path, "virchow2")
    trained_on = load_encoder(encoder_spec("virchow2"), weights, SMALL)
    identity = dict(trained_on.identity.__dict__)
    assert parse_overrides(identity["overrides"]) == SMALL
    pixels = torch.randint(0, 256, (2, 224, 224, 3), dtype=torch.uint8)
    torch.testing.assert_close(EncoderWeights(weights).encoder_for(identity)(pixels), trained_on(pixels))
    other = tmp_path / "other.bin"
    state = torch.load(weights, weights_only=True)
    torch.save(state | {"norm.weight": state["norm.weight"] + 1}, other)
    with pytest.raises(
        ProjectError,
        match=rf"sha256 \w{{12}}…, but the model was trained on virchow2 weights with sha256 {identity['weights_sha256'][:12]}",
    ):
        EncoderWeights(other).encoder_for(identity)
    with pytest.raises(ProjectError, match=r"inference.encoder_weights=<file or folder>; Virchow2"):
        EncoderWeights(None).encoder_for(identity)
