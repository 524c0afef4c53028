"""Graph building: the spot graph and position-embedding indices of each section."""

from kedro.pipeline import Node, Pipeline

from thitogene_kedro.pipelines.graph_building.nodes import build_spot_graphs


def create_pipeline(**kwargs) -> Pipeline:
    """Build the graph_building pipeline."""
    return Pipeline(
        [
            Node(
                func=build_spot_graphs,
                inputs=["preprocessed_sections", "params:graph_building"],
                outputs=["spot_graphs", "graph_report"],
                name="build_spot_graphs_node",
            )
        ],
        tags=["graph_building"],
    )
