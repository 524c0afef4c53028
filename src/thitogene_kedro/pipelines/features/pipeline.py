"""Features: per-spot embeddings by a frozen foundation encoder (``docs/encoders.md``)."""

from kedro.pipeline import Node, Pipeline

from thitogene_kedro.pipelines.features.nodes import encode_sections


def create_pipeline(**kwargs) -> Pipeline:
    """Build the features pipeline."""
    return Pipeline(
        [
            Node(
                func=encode_sections,
                inputs=[
                    "preprocessed_sections",
                    "raw_images",
                    "stored_patches",
                    "frozen_encoder",
                    "encoder_feature_cache",
                    "params:features",
                ],  # fmt: skip
                outputs=["encoder_features", "features_report", "encoder_identity"],
                name="encode_sections_node",
            )
        ],
        tags=["features"],
    )
