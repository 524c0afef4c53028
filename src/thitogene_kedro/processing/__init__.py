"""Data processing of the library layer: genes, normalisation, patches, spot graphs, model inputs."""
