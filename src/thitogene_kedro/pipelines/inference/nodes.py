"""Nodes of the inference pipeline: spots (given or a grid over the tissue), what the model predicts
from (patches, or its frozen encoder's features), prediction, maps."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import anndata as ad
import numpy as np
import pandas as pd
from scipy import ndimage

from thitogene_kedro.encoders import EncoderWeights
from thitogene_kedro.encoders.features import progress_logger, read_size, section_features
from thitogene_kedro.errors import ProjectError
from thitogene_kedro.models.pyfunc import clamp_at_zero
from thitogene_kedro.models.runtime import resolve_device
from thitogene_kedro.pipelines.inference.params import InferenceParams
from thitogene_kedro.processing.patches import cut_patches
from thitogene_kedro.processing.spot_graphs import knn_edge_index
from thitogene_kedro.provenance import h5ad_safe
from thitogene_kedro.sections.images import SlideImage
from thitogene_kedro.sections.schema import SectionDataError
from thitogene_kedro.sections.spatial_layout import ST_SPOT_DIAMETER_UM, spatial_library, spot_grid_columns

logger = logging.getLogger(__name__)

_PLAUSIBLE_MPP = (0.05, 20.0)


def model_training_mpp(trained: Any, params: InferenceParams) -> float:
    """µm per pixel of the model's training sections: stored with the model, unless
    ``inference.training_mpp`` overrides it (a difference is warned about).

    Raises:
        ProjectError: neither the model (written before it was stored) nor the parameter gives it.
    """
    stored = trained.inputs.mpp
    if params.training_mpp is None:
        if stored is None:
            raise ProjectError(
                "the model stores no training µm/px (trained before it was recorded); set "
                "inference.training_mpp=<µm per pixel of its training images> or retrain it"
            )
        return float(stored)
    if stored is not None and abs(params.training_mpp - stored) > 0.05 * stored:
        logger.warning("inference.training_mpp %.4f overrides the model's own %.4f µm/px", params.training_mpp, stored)
    return float(params.training_mpp)


def image_mpp(image: SlideImage, params: InferenceParams, training_mpp: float, grid: bool = False) -> float:
    """Microns per pixel: the parameter, else the image's resolution metadata, else (with a spot
    table only, warned) the training value.

    Raises:
        ProjectError: a grid is asked for and neither ``inference.mpp`` nor the metadata give it.
    """
    params = InferenceParams.model_validate(params)
    if params.mpp is not None:
        return params.mpp
    mpp = image.metadata_mpp()
    if mpp is not None:
        if _PLAUSIBLE_MPP[0] <= mpp <= _PLAUSIBLE_MPP[1]:
            logger.info("%s: %.3f µm/px from the image's resolution metadata", image.path.name, mpp)
            return mpp
    if grid:
        raise ProjectError(
            f"{image.path}: a spot grid needs the slide's resolution and the file gives none"
            f"{'' if mpp is None else f' usable ({mpp:.4g} µm/px)'}; set inference.mpp=<µm per pixel> "
            "or give a spot table (inference.spots)"
        )
    logger.warning(
        "%s: no usable resolution metadata; assuming the training data's %.3f µm/px (set inference.mpp)",
        image.path.name, training_mpp,
    )  # fmt: skip
    return training_mpp


def otsu_threshold(values: np.ndarray) -> float:
    """Otsu's threshold of 8-bit values."""
    histogram = np.bincount(np.clip(values.ravel(), 0, 255).astype(np.int64), minlength=256).astype(np.float64)
    weights = np.cumsum(histogram)
    means = np.cumsum(histogram * np.arange(256))
    total, total_mean = weights[-1], means[-1]
    between = (total_mean * weights - means * total) ** 2 / np.maximum(weights * (total - weights), 1e-12)
    return float(np.argmax(between))


def tissue_mask(thumbnail: np.ndarray, texture_min: float = 5.0) -> np.ndarray:
    """Boolean tissue mask of an RGB thumbnail: darker than the grey-level Otsu threshold, or more
    saturated than the saturation Otsu threshold *and* textured (grey-level standard deviation over
    7 px above ``texture_min``: the smooth stain haze beside real sections is saturated but flat),
    opened, holes filled, small specks removed."""
    rgb = thumbnail.astype(np.float64)
    grey = rgb.mean(axis=2)
    saturation = rgb.max(axis=2) - rgb.min(axis=2)
    local_mean = ndimage.uniform_filter(grey, 7)
    local_sd = np.sqrt(np.maximum(ndimage.uniform_filter(grey**2, 7) - local_mean**2, 0.0))
    stained = (saturation > max(otsu_threshold(saturation), 20)) & (local_sd > texture_min)
    mask = (grey < otsu_threshold(grey)) | stained
    mask = ndimage.binary_opening(mask, iterations=2)
    mask = ndimage.binary_fill_holes(mask)
    labels, count = ndimage.label(mask)
    if count:
        sizes = ndimage.sum(mask, labels, range(1, count + 1))
        mask = np.isin(labels, 1 + np.flatnonzero(sizes >= 0.01 * mask.size))
    return mask


def grid_spots(mask: np.ndarray, scale: float, pitch_px: float, density: int) -> pd.DataFrame:
    """Spots on a square grid of ``pitch_px / density`` (full-resolution pixels) over the mask.

    Array coordinates count base-pitch steps from the tissue's corner, starting at 1, so a denser
    grid shares position indices between neighbouring spots.
    """
    rows, columns = np.nonzero(mask)
    if len(rows) == 0:
        raise ValueError("no tissue found on the slide")
    x0, x1 = columns.min() / scale, (columns.max() + 1) / scale
    y0, y1 = rows.min() / scale, (rows.max() + 1) / scale
    step = pitch_px / density
    xs, ys = np.arange(x0 + step / 2, x1, step), np.arange(y0 + step / 2, y1, step)
    gx, gy = np.meshgrid(xs, ys)
    on = mask[
        np.clip((gy * scale).astype(int), 0, mask.shape[0] - 1), np.clip((gx * scale).astype(int), 0, mask.shape[1] - 1)
    ]
    ix, iy = np.meshgrid(np.arange(len(xs)), np.arange(len(ys)))
    spots = pd.DataFrame(
        {
            "pixel_x": gx[on],
            "pixel_y": gy[on],
            "array_x": ix[on] // density + 1,
            "array_y": iy[on] // density + 1,
        }
    )
    spots.index = pd.Index([f"grid_{x}_{y}" for x, y in zip(ix[on], iy[on], strict=True)], name="spot_id")
    return spots


def slide_spots(
    image: SlideImage, given: pd.DataFrame | None, pitch_px: float, params: InferenceParams
) -> tuple[pd.DataFrame, str]:
    """The given spots (array coordinates derived from the pitch where missing), or a grid over the tissue."""
    if given is None:
        thumbnail, scale = image.thumbnail(params.tissue_max_px)
        try:
            return grid_spots(tissue_mask(thumbnail), scale, pitch_px, params.grid_density), "grid"
        except ValueError as error:
            raise SectionDataError(image.path, None, str(error)) from error
    spots = given.copy()
    if not {"array_x", "array_y"} <= set(spots.columns):
        origin = spots[["pixel_x", "pixel_y"]].min().to_numpy()
        grid = np.round((spots[["pixel_x", "pixel_y"]].to_numpy() - origin) / pitch_px).astype(np.int64) + 1
        spots["array_x"], spots["array_y"] = grid[:, 0], grid[:, 1]
    return spots, "table"


def check_spots_inside(image: SlideImage, spots: pd.DataFrame) -> None:
    """Raises SectionDataError naming the spots that lie outside the image."""
    x, y = spots["pixel_x"], spots["pixel_y"]
    outside = (x < 0) | (x >= image.width) | (y < 0) | (y >= image.height)
    if outside.any():
        raise SectionDataError(
            image.path, None,
            f"{int(outside.sum())} spot(s) lie outside the {image.width}×{image.height} image: {list(spots.index[outside][:5])}",
        )  # fmt: skip


def check_model_fits_slide(inference_model: dict[str, Any], image: SlideImage, params: InferenceParams) -> None:
    """A model trained on the SYNTHETIC demo is applied to demo slides only (unless allowed).

    Raises:
        ProjectError: the model's training data is synthetic and the slide is not.
    """
    synthetic_model = inference_model.get("data_source") == "synthetic"
    if not synthetic_model or getattr(image, "from_synthetic_demo", False) or params.allow_synthetic_model:
        return
    raise ProjectError(
        f"{image.path}: model {inference_model['name']} v{inference_model['version']} was trained on the SYNTHETIC "
        "demo (its genes and expression are made up) and this slide is not from it; train on real data "
        "(e.g. `kedro run --env her2st`) and give that model (inference.model=models:/her2st_thitogene@champion), "
        "or set inference.allow_synthetic_model=true to run it anyway"
    )


def prepare_spots(
    inference_image: SlideImage,
    inference_spots: pd.DataFrame | None,
    inference_model: dict[str, Any],
    params: InferenceParams,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The spots to predict (given, or a grid over the tissue) with array coordinates, and slide facts.

    Raises:
        SectionDataError: spots outside the image, no tissue, or coordinates the model cannot embed.
    """
    params = InferenceParams.model_validate(params)
    image = inference_image
    check_model_fits_slide(inference_model, image, params)
    trained = inference_model["predictor"].trained
    training_mpp = model_training_mpp(trained, params)
    mpp = image_mpp(image, params, training_mpp, grid=inference_spots is None)
    spots, source = slide_spots(image, inference_spots, params.spot_pitch_um / mpp, params)
    check_spots_inside(image, spots)
    table = trained.inputs.position_table_size
    too_far = (spots[["array_x", "array_y"]].to_numpy() >= table).any(axis=1)
    if too_far.any():
        raise SectionDataError(
            image.path, None,
            f"{int(too_far.sum())} spot(s) have array coordinates ≥ {table}, the model's position table; "
            "the slide is larger than the training arrays (give a spot table or crop the image)",
        )  # fmt: skip
    info = {
        "image": str(image.path), "width": image.width, "height": image.height, "mpp": mpp,
        "training_mpp": training_mpp, "spots_from": source, "n_spots": len(spots),
        "patch_px": int(round(trained.inputs.patch_size * training_mpp / mpp)),
        "patch_size": int(trained.inputs.patch_size),
    }  # fmt: skip
    logger.info(
        "%s: %d spots (%s), %.3f µm/px, %d-px patches resized to %d",
        image.path.name,
        len(spots),
        source,
        mpp,
        info["patch_px"],
        info["patch_size"],
    )
    return spots, info


def cut_slide_patches(
    inference_image: SlideImage, spots: pd.DataFrame, info: dict[str, Any], trained: Any
) -> np.ndarray:
    """One patch per spot of the training physical size, resized to the model's patch size (uint8).

    Cut with the patching settings stored with the model (size, padding, orientation), so a slide
    is patched the way the model's training sections were, whatever ``params:patching`` says now.
    """
    with inference_image as image:
        xy = spots[["pixel_x", "pixel_y"]].to_numpy()
        patches, _ = cut_patches(image, xy, trained.inputs.patching, int(info["patch_px"]))
    return patches


def encode_slide(
    inference_image: SlideImage, spots: pd.DataFrame, info: dict[str, Any], encoder_weights: EncoderWeights,
    identity: dict[str, Any], params: InferenceParams,
) -> np.ndarray:  # fmt: skip
    """The spots' features from the model's own frozen encoder (its weights checked by hash), the
    encoder's field of view cut at the slide's resolution, batch by batch with progress."""
    encoder = encoder_weights.encoder_for(identity).to(resolve_device(params.features.device))
    logger.info(
        "%s: %d spots through %s (%d px of the slide per patch, resized to %d)",
        inference_image.path.name, len(spots), encoder.identity.key, read_size(encoder, info["mpp"]), encoder.spec.input_px,
    )  # fmt: skip
    progress = progress_logger("Features", params.features.batch_size)
    with inference_image as image:
        xy = spots[["pixel_x", "pixel_y"]].to_numpy()
        return section_features(encoder, image, xy, info["mpp"], params.features, progress)


def slide_model_input(  # noqa: PLR0913, PLR0917 - the model, its encoder's weights, the slide and its spots, settings
    inference_model: dict[str, Any],
    inference_encoder_weights: EncoderWeights,
    inference_image: SlideImage,
    spots: pd.DataFrame,
    info: dict[str, Any],
    params: InferenceParams,
) -> dict[str, Any]:
    """What the model predicts from: ``{"patches": ...}`` for a model on patches (its training
    patch size and settings), ``{"features": ..., "encoder_weights_sha256": ...}`` for a model on
    frozen-encoder features (``inference.encoder_weights``: the weights it was trained on; other
    weights, or none, are refused with one line)."""
    params = InferenceParams.model_validate(params)
    trained = inference_model["predictor"].trained
    if trained.inputs.encoder is None:
        return {"patches": cut_slide_patches(inference_image, spots, info, trained)}
    identity = dict(trained.inputs.encoder)
    features = encode_slide(inference_image, spots, info, inference_encoder_weights, identity, params)
    return {"features": features, "encoder_weights_sha256": identity["weights_sha256"]}


def predict_slide(  # noqa: PLR0913, PLR0917 - the model, the slide, what was cut from it, provenance, settings
    inference_model: dict[str, Any],
    inference_image: SlideImage,
    model_input: dict[str, Any],
    spots: pd.DataFrame,
    info: dict[str, Any],
    run_provenance: dict[str, Any],
    params: InferenceParams,
) -> ad.AnnData:
    """Predicted expression per spot as a spatial AnnData in the layout scanpy and squidpy read
    (``obsm['spatial']`` pixel centres, the slide's hires/lowres images: ``sections.spatial_layout``),
    with the registered model, what it was trained on and this run in ``uns['provenance']``."""
    params = InferenceParams.model_validate(params)
    predictor = inference_model["predictor"]
    positions = spots[["array_x", "array_y"]].to_numpy(dtype=np.int64)
    graph = predictor.graph
    edges = knn_edge_index(positions, graph.k, graph.symmetric, graph.self_loops)
    request = {**model_input, "positions": positions, "edge_index": edges, "clamp_at_zero": False}
    values, n_clamped = predictor.predict(None, request).to_numpy(dtype=np.float32), 0
    if params.clamp_at_zero:  # as the registered model does by default
        values, n_clamped = clamp_at_zero(values)
    grid = spot_grid_columns(spots["array_x"].to_numpy(), spots["array_y"].to_numpy(), spots.index)
    adata = ad.AnnData(
        X=values,
        obs=spots.join(grid[[c for c in grid.columns if c not in spots.columns]]),
        var=pd.DataFrame(index=pd.Index(predictor.genes, name="gene")),
        obsm={"spatial": spots[["pixel_x", "pixel_y"]].to_numpy(dtype=np.float64)},
    )
    adata.uns["model"] = {k: inference_model[k] for k in ("uri", "name", "version", "run_id")}
    adata.uns["slide"] = dict(info)
    adata.uns["prediction"] = {
        "values": "log-normalised expression"
        + (", clamped at 0" if params.clamp_at_zero else ", the model's raw output"),
        "n_clamped": n_clamped,
    }
    adata.uns["source"] = "inference"
    registered = {k: inference_model[k] for k in ("uri", "name", "version", "run_id")}
    adata.uns["provenance"] = h5ad_safe({"model": registered | predictor.trained.describe(), **run_provenance})
    library = Path(str(info["image"])).stem
    with inference_image as image:  # a legacy ST spot is 100 µm across
        metadata = {"mpp": info["mpp"], "mpp_source": "the slide's resolution (inference.mpp where set)"}
        adata.uns["spatial"] = {library: spatial_library(image, ST_SPOT_DIAMETER_UM / info["mpp"], metadata)}
    return adata


def plot_slide_maps(predictions: ad.AnnData, params: InferenceParams) -> dict[str, Any]:
    """PNG maps of chosen genes over the slide's hires image (``map_genes``: names, or the N most variable)."""
    from thitogene_kedro.plotting import prediction_maps  # noqa: PLC0415 - matplotlib on demand

    params = InferenceParams.model_validate(params)
    if isinstance(params.map_genes, int):
        order = np.argsort(-np.asarray(predictions.X).var(axis=0), kind="stable")[: params.map_genes]
        genes = [predictions.var_names[i] for i in order]
    else:
        unknown = [g for g in params.map_genes if g not in predictions.var_names]
        if unknown:
            raise ValueError(f"inference.map_genes names genes the model does not predict: {unknown}")
        genes = list(params.map_genes)
    name = f"{predictions.uns['model']['name']} v{predictions.uns['model']['version']}"
    return {"predicted_genes": prediction_maps(name, predictions, genes)}
