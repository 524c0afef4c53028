"""Validated parameters of the patching pipeline (``conf/base/parameters_patching.yml``)."""

from thitogene_kedro.processing.patches import PatchingParams

__all__ = ["PatchingParams"]
