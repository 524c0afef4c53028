"""Project hooks: parameters reach nodes as their pydantic types and kedro-mlflow as dicts."""

from __future__ import annotations

from thitogene_kedro.hooks import ParameterLoggingHooks, ParameterRestoringHooks
from thitogene_kedro.pipelines.patching.params import PatchingParams


def test_parameters_are_dicts_for_logging_and_pydantic_for_the_node():
    logging_hooks = ParameterLoggingHooks()
    restoring = ParameterRestoringHooks(logging_hooks)
    params = PatchingParams(patch_size=64)
    inputs = {"params:patching": params, "raw_images": object()}
    logging_hooks.before_node_run(inputs)
    assert inputs["params:patching"] == {"patch_size": 64, "pad_value": 255, "orientation": "standard"}
    returned = restoring.before_node_run(inputs)
    assert returned == {"params:patching": params}  # Kedro updates the node's inputs with these
    assert restoring.before_node_run({}) == {}  # nothing held over to the next node
