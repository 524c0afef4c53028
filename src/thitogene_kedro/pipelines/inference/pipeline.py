"""The inference pipeline: a new H&E slide → predicted expression per spot with a registered model.

``kedro run --pipelines inference --params inference.image=PATH[,inference.spots=PATH][,inference.model=URI]``
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
                nodes.cut_slide_patches,
                ["inference_image", "inference_spot_table", "inference_slide", "inference_model"],
                "inference_patches",
                name="cut_slide_patches",
            ),
            Node(
                nodes.predict_slide,
                [
                    "inference_model",
                    "inference_image",
                    "inference_patches",
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
