"""Project hooks: parameters reach nodes as their pydantic types and kedro-mlflow as dicts."""

from __future__ import annotations

import signal

import mlflow
import pytest
from kedro.io import DataCatalog, MemoryDataset
from kedro.pipeline import Node, Pipeline

from thitogene_kedro.errors import ProjectError
from thitogene_kedro.hooks import (
    EpochMetricsHooks,
    ParameterLoggingHooks,
    ParameterRestoringHooks,
    ProjectHooks,
    run_name,
)
from thitogene_kedro.pipelines.patching.params import PatchingParams
from thitogene_kedro.training.epochs import EPOCH_LISTENER


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


def test_the_registration_reads_the_sessions_parameters_whatever_their_type(project_copy):
    """The fold registration reads ``training.registry.register_folds`` from the session, whose
    parameters Kedro hands over as the nodes' pydantic types."""
    import yaml  # noqa: PLC0415
    from kedro.framework.project import pipelines  # noqa: PLC0415

    from tests.conftest import PROJECT_ROOT, kedro_session  # noqa: PLC0415

    training = yaml.safe_load((PROJECT_ROOT / "conf" / "base" / "parameters_training.yml").read_text())
    training["training"]["registry"]["register_folds"] = True
    (project_copy / "conf" / "local" / "parameters_training.yml").write_text(yaml.safe_dump(training))
    with kedro_session(project_copy, plan=False) as session:
        session.load_context()
        names = {node.name for node in pipelines["training"].nodes}
    assert {f"fold_{s}.register_fold_model" for s in ("SYN_A1", "SYN_A2", "SYN_B1", "SYN_B2")} <= names
    assert "register_final_model" in names and "final.register_fold_model" not in names


def test_signals_stop_a_run_only_while_it_runs_and_a_refused_start_leaves_none():
    pipeline = Pipeline([Node(lambda training: training, "params:training", "out", name="train")])
    hooks, before = ProjectHooks(), signal.getsignal(signal.SIGTERM)
    refused = DataCatalog({"params:training": MemoryDataset({"device": "cuda:99"})})
    with pytest.raises(ProjectError, match=r"training.device=cuda:99: .*set training.device=auto or cpu"):
        hooks.before_pipeline_run({}, pipeline, refused)
    assert signal.getsignal(signal.SIGTERM) is before
    hooks.before_pipeline_run({}, pipeline, DataCatalog({"params:training": MemoryDataset({"device": "cpu"})}))
    assert signal.getsignal(signal.SIGTERM) is not before
    hooks.after_pipeline_run()
    assert signal.getsignal(signal.SIGTERM) is before


def test_runs_are_named_by_environment_and_pipelines_in_registry_order():
    registered = ["__default__", "preprocessing", "patching", "graph_building", "training"]
    params = {"env": "her2st", "pipeline_names": ["graph_building", "preprocessing", "patching"], "namespaces": None}
    assert run_name(params, registered) == "her2st·preprocessing+patching+graph_building"
    assert run_name({"env": None, "pipeline_names": []}, registered) == "local·__default__"
    assert run_name({"env": None, "pipeline_names": ["training"], "namespaces": ["fold_C2"]}, registered) == (
        "local·training·fold_C2"
    )


def test_a_folds_epochs_reach_mlflow_while_its_training_node_runs_and_only_then():
    hooks = EpochMetricsHooks()
    train = Node(lambda x: x, "inputs", "model", name="train_fold", namespace="fold_B1")
    other = Node(lambda x: x, "model", "history", name="predict_fold", namespace="fold_B1")
    with mlflow.start_run() as run:
        hooks.before_node_run(train)
        EPOCH_LISTENER.get()({"epoch": 1, "train_loss": 0.5, "seconds": 2.0, "spots_per_second": 9.0})
        EPOCH_LISTENER.get()({"epoch": 2, "train_loss": 0.25, "seconds": 2.0, "spots_per_second": 9.0})
        hooks.after_node_run()
        assert EPOCH_LISTENER.get() is None
        hooks.before_node_run(other)  # not a training node: nobody listens
        assert EPOCH_LISTENER.get() is None
        hooks.before_node_run(train)
        hooks.on_node_error()  # a failed (or interrupted) node stops listening too
        assert EPOCH_LISTENER.get() is None
    history = mlflow.MlflowClient().get_metric_history(run.info.run_id, "fold_B1.train_loss")
    assert [(m.step, m.value) for m in history] == [(1, 0.5), (2, 0.25)]
