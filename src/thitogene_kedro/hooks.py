"""Project hooks: run-start checks (environment, fold plan, device), interruptions recorded as KILLED
runs, MLflow run hygiene, tags, parameters."""

from __future__ import annotations

import contextlib
import contextvars
import functools
import json
import logging
import shutil
import time
from pathlib import Path
from typing import Any

import mlflow
from kedro.framework.context import KedroContext
from kedro.framework.hooks import hook_impl
from kedro.framework.project import pipelines, settings
from pydantic import BaseModel

from thitogene_kedro.errors import RunInterrupted, interrupts_raise
from thitogene_kedro.pipelines.registered_folds import (
    plan_for_run,
    registered_parameter,
    registered_plan,
    use_session_parameters,
)
from thitogene_kedro.provenance import git_commit
from thitogene_kedro.run_checks import check_environment, check_training
from thitogene_kedro.training.epochs import EPOCH_LISTENER, epoch_metrics
from thitogene_kedro.training.folds import FoldPlan
from thitogene_kedro.training.planning import PLAN_FILE, check_plan

logger = logging.getLogger(__name__)


class ProjectHooks:
    """Registered in ``settings.HOOKS``."""

    def __init__(self) -> None:
        self._project_path: Path | None = None
        self._env: str | None = None
        self._signals = contextlib.ExitStack()
        self._node: str | None = None
        self._interrupted_run: str | None = None

    @hook_impl(tryfirst=True)
    def after_context_created(self, context: KedroContext) -> None:
        """Check the environment exists; register pipelines with this session's fold plan; record
        CPU/GPU use as MLflow system metrics."""
        self._project_path = Path(context.project_path)
        self._env = context.env
        check_environment(Path(context.project_path) / settings.CONF_SOURCE, context.env)
        use_session_parameters(context.params)
        pipelines.configure("thitogene_kedro.pipeline_registry")  # rebuild with this session's ``folds``
        mlflow.enable_system_metrics_logging()

    @hook_impl(tryfirst=True)
    def before_pipeline_run(self, run_params: dict[str, Any], pipeline, catalog) -> None:
        """From here SIGINT/SIGTERM stop the run as :class:`RunInterrupted`; check the device and the
        fold plan against the data before any node runs (training, evaluation, clustering)."""
        self._node, self._interrupted_run = None, None
        if any("params:training" in node.inputs for node in pipeline.nodes):
            check_training(catalog.load("params:training"))
        if any(node.namespace for node in pipeline.nodes):
            self.check_fold_plan(catalog)
        self._signals.enter_context(interrupts_raise())  # after the checks: a refused run leaves no handler

    @hook_impl
    def before_node_run(self, node) -> None:
        self._node = node.name

    def check_fold_plan(self, catalog) -> FoldPlan:
        """The session's fold plan, checked against the section listings and the parameters.

        Raises:
            ValueError: no plan, or one that does not fit (the message names the plan file and the fix).
        """
        env = self._env or "local"
        where = f"{'conf/base/ or conf/local/' if env == 'local' else f'conf/{env}/'}{PLAN_FILE} (parameters 'folds')"
        fix = f"kedro folds plan{'' if env == 'local' else f' --env {env}'} [--params ...same as this run]"
        parameters = {name: catalog.load(f"params:{name}") for name in ("training", "preprocessing")}
        current = plan_for_run(parameters, catalog.load("raw_sections"), catalog.load("raw_images"))
        return check_plan(registered_parameter("folds"), current, where, fix)

    @hook_impl(trylast=True)
    def after_pipeline_run(self) -> None:
        """End the MLflow run kedro-mlflow leaves active, so the next session in this process gets its own."""
        self._signals.close()
        while mlflow.active_run():
            mlflow.end_run()

    @hook_impl(tryfirst=True)
    def on_pipeline_error(self, error: Exception) -> None:
        """An interrupted run: tag where it stopped (the run is then closed, and marked KILLED last)."""
        self._signals.close()
        if not isinstance(error, RunInterrupted):
            return
        error.node = error.node or self._node
        run = mlflow.active_run()
        if run is not None:
            mlflow.set_tags(error.tags())
            self._interrupted_run = run.info.run_id
        logger.warning("%s", error)

    @hook_impl(trylast=True, specname="on_pipeline_error")
    def close_failed_run(self) -> None:
        """Mark the run failed (KILLED when interrupted) and close it."""
        while mlflow.active_run():
            mlflow.end_run(status="FAILED")
        if self._interrupted_run is not None:
            mlflow.MlflowClient().set_terminated(self._interrupted_run, status="KILLED")
            self._interrupted_run = None


class EpochMetricsHooks:
    """Each epoch of a fold's training reaches MLflow as it ends (``<fold>.train_loss`` …, step =
    epoch), not when the fold does; epochs restored from a checkpoint come with the fold's
    ``training_metrics`` output."""

    def __init__(self) -> None:
        self._listening: contextvars.Token | None = None

    @staticmethod
    def _log(prefix: str, record: dict[str, float]) -> None:
        if mlflow.active_run() is not None:
            mlflow.log_metrics(epoch_metrics(prefix, record), step=int(record["epoch"]))

    @hook_impl
    def before_node_run(self, node) -> None:
        if node.namespace and node.name == f"{node.namespace}.train_fold":
            self._listening = EPOCH_LISTENER.set(functools.partial(self._log, node.namespace))

    @hook_impl
    def after_node_run(self) -> None:
        self._stop()

    @hook_impl
    def on_node_error(self) -> None:
        self._stop()

    def _stop(self) -> None:
        if self._listening is not None:
            EPOCH_LISTENER.reset(self._listening)
            self._listening = None


class ProgressHooks:
    """Progress as "k of n nodes" for the nodes that take a while (and the last one), in place of
    Kedro's three lines per node, which conf/logging.yml keeps off the console."""

    SLOW_SECONDS = 3.0

    def __init__(self) -> None:
        self._total, self._done, self._started, self._run_started = 0, 0, 0.0, 0.0

    @hook_impl
    def before_pipeline_run(self, pipeline) -> None:
        self._total, self._done, self._run_started = len(pipeline.nodes), 0, time.perf_counter()

    @hook_impl
    def after_pipeline_run(self) -> None:
        logger.info("run completed: %d nodes in %.1f s", self._done, time.perf_counter() - self._run_started)

    @hook_impl
    def before_node_run(self) -> None:
        self._started = time.perf_counter()

    @hook_impl
    def after_node_run(self, node) -> None:
        self._done += 1
        seconds = time.perf_counter() - self._started
        if seconds >= self.SLOW_SECONDS or self._done == self._total:
            logger.info("%d of %d nodes done: %s (%.1f s)", self._done, self._total, node.name, seconds)


def _stale_name(path: Path) -> Path:
    return path.with_name(f"{path.stem}.stale{path.suffix}")


class StaleOutputHooks:
    """A failed inference run leaves no earlier prediction that looks like its result: the outputs it
    did not write (``inference_*``) are renamed ``<name>.stale<suffix>``, with a warning."""

    def __init__(self) -> None:
        self._saved: set[str] = set()

    @hook_impl
    def before_pipeline_run(self) -> None:
        self._saved = set()

    @hook_impl
    def after_dataset_saved(self, dataset_name: str) -> None:
        self._saved.add(dataset_name)

    @hook_impl
    def on_pipeline_error(self, pipeline, catalog) -> None:
        for name in sorted(pipeline.all_outputs()):
            if not name.startswith("inference_") or name in self._saved or name not in catalog:
                continue
            dataset = catalog.get(name)
            where = getattr(dataset, "_filepath", None) or getattr(dataset, "_path", None)
            path = Path(str(where)) if where else None
            if path is not None and path.exists():
                stale = _stale_name(path)
                if stale.is_dir():
                    shutil.rmtree(stale)
                path.replace(stale)
                logger.warning("%s is from an earlier run: renamed %s (this run failed)", path, stale.name)


def job_tags(runtime_params: dict[str, Any]) -> dict[str, str]:
    """``fold``, ``variant`` and ``seed`` of a study or sweep job (its ``run_name`` and ``run_suffix``)."""
    name = runtime_params.get("run_name")
    if not name or not runtime_params.get("run_suffix"):
        return {}
    from thitogene_kedro.sweep import Job  # noqa: PLC0415 - the one run-name form

    job = Job.from_run_name(str(name))
    return {"fold": job.fold, "variant": job.variant, "seed": job.seed}


def run_name(run_params: dict[str, Any], registered: list[str]) -> str:
    """``<env>·<pipelines in registry order>[·<namespaces>]``, e.g. ``her2st·preprocessing+patching``."""
    asked = run_params.get("pipeline_names") or [run_params.get("pipeline_name") or "__default__"]
    ordered = sorted(set(asked), key=lambda name: registered.index(name) if name in registered else len(registered))
    parts = [run_params.get("env") or "local", "+".join(ordered)]
    if run_params.get("namespaces"):
        parts.append("+".join(sorted(run_params["namespaces"])))
    return "·".join(parts)


class RunTagHooks:
    """Tags each MLflow run with the code version and the data it reads (from descriptions, not loads)."""

    def __init__(self) -> None:
        self._project_path: Path | None = None

    @hook_impl
    def after_context_created(self, context: KedroContext) -> None:
        self._project_path = Path(context.project_path)

    @hook_impl(trylast=True)
    def before_pipeline_run(self, run_params: dict[str, Any], catalog) -> None:
        if mlflow.active_run() is None:
            return
        tags = {}
        found = git_commit(self._project_path or Path.cwd())
        if found:
            tags["git_commit"], tags["git_dirty"] = found[0], str(found[1]).lower()
        if "raw_sections" in catalog:
            described = catalog.get("raw_sections")._describe()
            tags["data_source"], tags["data_path"] = str(described.get("source")), str(described.get("path"))
        plan = registered_plan()
        if plan is not None:
            tags["sections"] = " ".join(plan.basis.sections)
        runtime = run_params.get("runtime_params") or {}
        if not runtime.get("run_name"):  # kedro-mlflow would name it after the pipelines, in any order
            tags["mlflow.runName"] = run_name(run_params, list(pipelines))
        mlflow.set_tags(tags | job_tags(runtime))


class ParameterLoggingHooks:
    """Nodes receive their parameters as the validated pydantic objects Kedro makes from their type
    hints; kedro-mlflow logs a node's parameters flattened only when they are dicts. So parameters
    are handed to kedro-mlflow's hook as dicts (first) and given back to the node as the objects (last).
    """

    def __init__(self) -> None:
        self._originals: dict[str, BaseModel] = {}

    @hook_impl(tryfirst=True)
    def before_node_run(self, inputs: dict[str, Any]) -> None:
        self._originals = {k: v for k, v in inputs.items() if k.startswith("params:") and isinstance(v, BaseModel)}
        for key, value in self._originals.items():
            inputs[key] = value.model_dump(mode="json")


class ParameterRestoringHooks:
    """The second half of :class:`ParameterLoggingHooks` (a hook name can be implemented once per class)."""

    def __init__(self, logging_hooks: ParameterLoggingHooks) -> None:
        self._logging = logging_hooks

    @hook_impl(trylast=True)
    def before_node_run(self, inputs: dict[str, Any]) -> dict[str, Any]:
        originals, self._logging._originals = self._logging._originals, {}
        return originals


class VizAnnDataStatsHooks:
    """kedro-viz's dataset statistics (``.viz/stats.json``, written by its own hook after a run)
    know only DataFrames; this adds the spots × genes of every AnnData the run saved, so kedro-viz
    shows them instead of "N/A rows / N/A columns"."""

    def __init__(self) -> None:
        self._shapes: dict[str, tuple[int, int]] = {}
        self._project_path: Path | None = None

    @hook_impl
    def after_context_created(self, context: KedroContext) -> None:
        self._project_path = Path(context.project_path)

    @hook_impl
    def after_dataset_saved(self, dataset_name: str, data: Any) -> None:
        if type(data).__name__ == "AnnData" and hasattr(data, "n_obs"):
            self._shapes[dataset_name] = (int(data.n_obs), int(data.n_vars))

    @hook_impl(trylast=True)
    def after_pipeline_run(self) -> None:
        stats_file = (self._project_path or Path.cwd()) / ".viz" / "stats.json"
        if not self._shapes or not stats_file.is_file():
            return
        try:
            stats = json.loads(stats_file.read_text())
        except (OSError, ValueError):
            return
        for name, (rows, columns) in self._shapes.items():
            stats[name] = {**stats.get(name, {}), "rows": rows, "columns": columns}
        stats_file.write_text(json.dumps(stats))
        self._shapes = {}
