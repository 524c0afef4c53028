"""Preprocessing: raw sections -> gene statistics -> selected genes -> normalised per-section AnnData."""

from kedro.pipeline import Node, Pipeline

from thitogene_kedro.pipelines.preprocessing.nodes import (
    gene_statistics,
    normalise_sections,
    select_genes,
    summarise_sections,
)


def create_pipeline(**kwargs) -> Pipeline:
    """Build the preprocessing pipeline."""
    return Pipeline(
        [
            Node(
                func=gene_statistics,
                inputs=["raw_sections", "gene_list", "params:preprocessing"],
                outputs="gene_statistics",
                name="gene_statistics_node",
            ),
            Node(
                func=select_genes,
                inputs=["raw_sections", "gene_statistics", "gene_list", "params:preprocessing"],
                outputs="selected_genes",
                name="select_genes_node",
            ),
            Node(
                func=normalise_sections,
                inputs=[
                    "raw_sections",
                    "raw_images",
                    "raw_previews",
                    "selected_genes",
                    "gene_list",
                    "run_provenance",
                    "params:preprocessing",
                ],
                outputs="preprocessed_sections",
                name="normalise_sections_node",
            ),
            Node(
                func=summarise_sections,
                inputs=["preprocessed_sections", "params:preprocessing"],
                outputs="preprocessing_report",
                name="summarise_sections_node",
            ),
        ],
        tags=["preprocessing"],
    )
