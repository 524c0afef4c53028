"""The inference pipeline: a new H&E slide → predicted expression per spot with a registered model.

``kedro run --pipelines inference --params inference.image=PATH[,inference.spots=PATH][,inference.model=URI]``
(a model on frozen-encoder features also ``inference.encoder_weights=PATH``: the weights it was trained on)
"""

from __future__ import annotations

from kedro.pipeline import Node, Pipeline

from thitogene_kedro.pipelines.inference import nodes


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            Node(
                nodes.prepare_spots,
                ["inference_image", "inference_spots", "inference_model", "params:inference"],
                ["inference_spot_table", "inference_slide"],
                name="prepare_spots",
            ),
            Node(
                nodes.slide_model_input,
                [
                    "inference_model",
                    "inference_encoder_weights",
                    "inference_image",
                    "inference_spot_table",
                    "inference_slide",
                    "params:inference",
                ],
                "inference_model_input",
                name="slide_model_input",
            ),
            Node(
                nodes.predict_slide,
                [
                    "inference_model",
                    "inference_image",
                    "inference_model_input",
                    "inference_spot_table",
                    "inference_slide",
                    "run_provenance",
                    "params:inference",
                ],
                "inference_predictions",
                name="predict_slide",
            ),
            Node(
                nodes.plot_slide_maps,
                ["inference_predictions", "params:inference"],
                "inference_maps",
                name="plot_slide_maps",
            ),
        ],
        tags=["inference"],
    )
