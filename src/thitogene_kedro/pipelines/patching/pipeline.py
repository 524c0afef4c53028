"""Patching: one uint8 RGB patch per spot from each section's full-resolution image."""

from kedro.pipeline import Node, Pipeline

from thitogene_kedro.pipelines.patching.nodes import extract_section_patches


def create_pipeline(**kwargs) -> Pipeline:
    """Build the patching pipeline."""
    return Pipeline(
        [
            Node(
                func=extract_section_patches,
                inputs=["preprocessed_sections", "raw_images", "params:patching"],
                outputs=["section_patches", "patching_report"],
                name="extract_section_patches_node",
            )
        ],
        tags=["patching"],
    )
