"""Project commands added to ``kedro``: ``run`` with one-line errors, the folds, and the study.

    kedro run [--traceback] [...every option of Kedro's own run]
    kedro folds plan [--env ENV] [--params K=V,...]
    kedro folds list [--env ENV] [--params K=V,...]
    kedro folds run [--devices cpu|0,1,...] [--per-device N] [--env ENV] [--params K=V,...] [--then PIPELINE]
    kedro study run [--devices cpu|0,...] [--parallel N] [--env ENV] [--params K=V,...] [--write FILE]
    kedro study summarise [--env ENV] [--params K=V,...] [--write FILE]

``folds plan`` plans the folds from the data's section listing and the parameters (the one planner,
:func:`~thitogene_kedro.training.planning.plan_from_data`) and writes them into the environment's
``conf/<env>/parameters_folds.yml``; the pipelines' fold namespaces are built from that file, and
``folds list`` prints them (no data is read).
``folds run`` prepares the data once (the data pipelines), then runs one ``kedro run --pipelines
training --namespaces <fold>`` process per fold, ``--per-device`` at a time on each device
(``CUDA_VISIBLE_DEVICES`` set per process; one small fold rarely fills a GPU), and finally
``kedro run --pipelines <then>``, which reuses every finished fold from its checkpoint and does what
needs all folds (the cross-validation summary, the final model, its registration, evaluation).
Each fold process is its own MLflow run; its output goes to ``logs/folds/<fold>.log``.
``study`` runs every variant × seed × fold of ``parameters_study.yml`` (:mod:`thitogene_kedro.study`).

Every command reports a user-fixable error (bad data, parameters, inputs) as one line and exits 1,
with the traceback in ``info.log`` (``--traceback`` on ``run`` prints it); an interrupted run
(Ctrl-C, SIGTERM) says where it stopped and exits 130 or 143. Other errors are bugs: traceback.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import click
from kedro.framework.cli.project import run as kedro_run
from kedro.framework.project import settings
from kedro.framework.session import KedroSession
from kedro.framework.startup import bootstrap_project
from kedro.io import AbstractDataset

from thitogene_kedro.errors import RunInterrupted, interrupts_raise, one_line
from thitogene_kedro.run_checks import check_training

if TYPE_CHECKING:
    from collections.abc import Iterator

    from thitogene_kedro.study import StudyRun  # noqa: F401 - the return annotation


def _session(project: Path, env: str | None, params: dict) -> KedroSession:
    bootstrap_project(project)
    return KedroSession.create(project_path=project, env=env, runtime_params=params)


def fold_names(project: Path, env: str | None, params: dict) -> list[str]:
    """The fold namespaces of the environment's plan (``fold_<id>``), as the training pipeline has them."""
    from thitogene_kedro.pipelines.registered_folds import registered_plan  # noqa: PLC0415

    with _session(project, env, params) as session:
        session.load_context()  # the project hook hands the session's parameters to the registration
        plan = registered_plan()
    if plan is None:
        raise click.ClickException(f"no fold plan for this environment; run `kedro folds plan{_env_flag(env)}`")
    return plan.names


def _env_flag(env: str | None) -> str:
    return f" --env {env}" if env else ""


def _config_loader(project: Path, env: str | None, params: dict):  # noqa: ANN202 - settings' loader class
    """The project's configuration for ``env`` and runtime ``params``, without a session."""
    bootstrap_project(project)
    return settings.CONFIG_LOADER_CLASS(
        conf_source=str(project / settings.CONF_SOURCE), env=env, runtime_params=params, **settings.CONFIG_LOADER_ARGS
    )


def plan_folds(
    project: Path, env: str | None, params: dict, command: str = "kedro folds plan"
) -> tuple[Path, list[str]]:
    """Plan the folds from the data listing and the parameters; write them to the environment's plan file."""
    return write_folds(project, env, _config_loader(project, env, params), command)


def write_folds(project: Path, env: str | None, loader, command: str) -> tuple[Path, list[str]]:  # noqa: ANN001
    """:func:`plan_folds` with the configuration already loaded."""
    from thitogene_kedro.pipelines.registered_folds import plan_for_run  # noqa: PLC0415
    from thitogene_kedro.training.planning import PLAN_FILE, write_plan  # noqa: PLC0415

    # the configuration and two catalog entries only: no session, hooks or MLflow set-up are needed
    parameters, catalog = loader["parameters"], loader["catalog"]
    listings = [AbstractDataset.from_config(name, catalog[name]).load() for name in ("raw_sections", "raw_images")]
    plan = plan_for_run(parameters, *listings)
    path = project / "conf" / (env or "local") / PLAN_FILE
    write_plan(plan, path, command)
    return path, plan.names


def kedro_command(*args: str, env: str | None, params: str | None) -> list[str]:
    command = [sys.executable, "-m", "kedro", "run", *args]
    if env:
        command += ["--env", env]
    if params:
        command += ["--params", params]
    return command


def run_side_by_side(
    folds: list[str], devices: list[str], per_device: int, command_for, log_dir: Path
) -> dict[str, int]:
    """Run one process per fold, ``per_device`` at a time on each device; their exit codes.

    SIGINT or SIGTERM stops the running ones with SIGTERM (each records its run KILLED) and raises
    :class:`RunInterrupted`.
    """
    log_dir.mkdir(parents=True, exist_ok=True)
    slots = [device for device in devices for _ in range(per_device)]
    waiting, running, codes = list(folds), {}, {}
    try:
        with interrupts_raise():
            _run_slots(waiting, running, codes, slots, command_for, log_dir)
    except RunInterrupted as stop:
        for _, process, _ in running.values():
            process.terminate()  # SIGTERM: each run records itself KILLED where it stopped
        for fold, process, log in running.values():
            process.wait(timeout=120)
            log.close()
            click.echo(f"{fold}: stopped (exit {process.returncode})")
        stop.place = f"{len(running)} runs side by side ({', '.join(sorted(f for f, _, _ in running.values()))})"
        raise
    return codes


def _run_slots(waiting: list[str], running: dict, codes: dict, slots: list[str], command_for, log_dir: Path) -> None:  # noqa: ANN001
    """Start runs in free slots until every one has ended (``running`` and ``codes`` are updated in place)."""
    while waiting or running:
        free = [slot for slot in range(len(slots)) if slot not in running]
        while waiting and free:
            slot, fold = free.pop(0), waiting.pop(0)
            env = dict(os.environ)
            if slots[slot] != "cpu":
                env["CUDA_VISIBLE_DEVICES"] = slots[slot]
            log = (log_dir / f"{fold}.log").open("w")
            process = subprocess.Popen(command_for(fold), env=env, stdout=log, stderr=subprocess.STDOUT)
            running[slot] = (fold, process, log)
            click.echo(f"{fold}: started on {slots[slot]} (pid {process.pid}), log {log.name}")
        time.sleep(0.5)
        for slot, (fold, process, log) in list(running.items()):
            if process.poll() is not None:
                log.close()
                codes[fold] = process.returncode
                del running[slot]
                state = "finished" if process.returncode == 0 else f"FAILED (exit {process.returncode})"
                click.echo(f"{fold}: {state}")


def with_reported_errors(command):  # noqa: ANN001, ANN201 - a click callback
    """``command`` with :func:`reported_errors` around it."""

    @functools.wraps(command)
    def wrapped(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        with reported_errors():
            return command(*args, **kwargs)

    return wrapped


@contextlib.contextmanager
def reported_errors(show_traceback: bool = False) -> Iterator[None]:
    """A user-fixable error or an interruption becomes one line on stderr and an exit code; the
    traceback goes to the log file (logger ``thitogene_kedro.tracebacks``, see conf/logging.yml)."""
    try:
        yield
    except (click.ClickException, click.exceptions.Exit, click.Abort):
        raise
    except Exception as error:
        message = one_line(error)
        if message is None or show_traceback:
            raise
        logging.getLogger("thitogene_kedro.tracebacks").error("%s", message, exc_info=error)
        interrupted = isinstance(error, RunInterrupted)
        click.echo(f"{'Stopped' if interrupted else 'Error'}: {message}", err=True)
        if not interrupted:
            click.echo("(the traceback is in info.log; `kedro run --traceback` prints it)", err=True)
        raise SystemExit(error.exit_code if interrupted else 1) from None


@click.group(name="thitogene")
def cli() -> None:
    """thitogene-kedro project commands."""


_TRACEBACK = click.Option(["--traceback"], is_flag=True, default=False, help="Print the traceback of an error.")


@cli.command(name="run", params=[*kedro_run.params, _TRACEBACK], help=kedro_run.help)
def run(traceback: bool, **options) -> None:  # noqa: ANN003 - Kedro's own run options
    """Kedro's ``run``, with user-fixable errors and interruptions reported in one line."""
    with reported_errors(traceback):
        kedro_run.callback(**options)


@cli.group()
def folds() -> None:
    """Cross-validation folds: list them, run them side by side."""


def parse_params(value: str | None) -> dict:
    from kedro.framework.cli.utils import _split_params  # noqa: PLC0415

    return _split_params(None, None, value) if value else {}


@folds.command(name="plan")
@click.option("--env", "-e", default=None, help="Kedro environment.")
@click.option("--params", default=None, help="Runtime parameters, as for kedro run.")
@with_reported_errors
def plan_command(env: str | None, params: str | None) -> None:
    """Plan the folds from the data and parameters and write conf/<env>/parameters_folds.yml."""
    command = f"kedro folds plan{_env_flag(env)}" + (f' --params "{params}"' if params else "")
    path, names = plan_folds(Path.cwd(), env, parse_params(params), command)
    click.echo(f"{len(names)} folds written to {path.relative_to(Path.cwd())}: {' '.join(names)}")


@folds.command(name="list")
@click.option("--env", "-e", default=None, help="Kedro environment.")
@click.option("--params", default=None, help="Runtime parameters, as for kedro run.")
@with_reported_errors
def list_folds(env: str | None, params: str | None) -> None:
    """Print the fold namespaces, one per line (job index i runs line i)."""
    for name in fold_names(Path.cwd(), env, parse_params(params)):
        click.echo(name)


@folds.command(name="run")
@click.option("--devices", default="cpu", show_default=True, help="cpu, or comma-separated CUDA device ids.")
@click.option("--per-device", default=1, show_default=True, type=click.IntRange(1), help="Folds at once per device.")
@click.option("--env", "-e", default=None, help="Kedro environment.")
@click.option("--params", default=None, help="Runtime parameters, as for kedro run.")
@click.option("--then", "then", default=None, help="Pipeline run after the folds [default: --pipeline].")
@click.option(
    "--pipeline", type=click.Choice(["training", "feature_training"]), default="training", show_default=True,
    help="What trains each fold: feature_training for a model on frozen-encoder features (features run once first).",
)  # fmt: skip
@with_reported_errors
def run_folds(  # noqa: PLR0913 - the command's options
    devices: str, per_device: int, env: str | None, params: str | None, then: str | None, pipeline: str
) -> None:
    """Data pipelines once, every fold in its own process side by side, then ``--then``."""
    project, runtime = Path.cwd(), parse_params(params)
    check_training(_config_loader(project, env, runtime)["parameters"].get("training", {}))
    names = fold_names(project, env, runtime)
    click.echo(f"{len(names)} folds on {devices} × {per_device}: {' '.join(names)}")
    from thitogene_kedro.sweep import data_pipelines  # noqa: PLC0415

    data = ",".join(data_pipelines([pipeline]))
    _run_step("the data pipelines", kedro_command("--pipelines", data, env=env, params=params))
    codes = run_side_by_side(
        names,
        devices.split(","),
        per_device,
        lambda fold: kedro_command("--pipelines", pipeline, "--namespaces", fold, env=env, params=params),
        project / "logs" / "folds",
    )
    failed = sorted(fold for fold, code in codes.items() if code)
    if failed:
        raise click.ClickException(f"folds failed: {' '.join(failed)} (see logs/folds/); rerun to resume them")
    then = then or pipeline
    _run_step(f"the closing run (--pipelines {then})", kedro_command("--pipelines", then, env=env, params=params))


def _run_step(what: str, command: list[str]) -> None:
    """Run one ``kedro run`` step in its own process; its own output says what went wrong."""
    code = subprocess.run(command, check=False).returncode
    if code:
        raise click.ClickException(f"{what} failed (exit {code}); see the error above")


@cli.group()
def study() -> None:
    """The study: every variant × seed × fold as its own MLflow run, and its results (docs/results.md)."""


def _study_run(project: Path, env: str | None, params: dict, command: str) -> StudyRun:
    """Plan the folds (as ``kedro folds plan``), read ``study`` and list the jobs."""
    from thitogene_kedro.study import StudyParams, StudyRun, study_jobs, variant_pipelines  # noqa: PLC0415

    loader = _config_loader(project, env, params)
    parameters = loader["parameters"]  # read once: each lookup loads the files again
    training = parameters.get("training", {})
    check_training(training)
    _, names = write_folds(project, env, loader, command)
    try:
        study = StudyParams.model_validate(parameters.get("study", {}))
    except ValueError as error:
        raise click.ClickException(f"study parameters (conf/*/parameters_study.yml): {error}") from None
    jobs = study_jobs(study, [n for n in names if n != "final"])
    return StudyRun(project, env, params, study, jobs, variant_pipelines(study, training))


def _study_command(verb: str, env: str | None, params: str | None) -> str:
    return f"kedro study {verb}{_env_flag(env)}" + (f' --params "{params}"' if params else "")


@study.command(name="run")
@click.option("--env", "-e", default=None, help="Kedro environment.")
@click.option("--params", default=None, help="Runtime parameters, as for kedro run (under every variant's).")
@click.option("--devices", default="cpu", show_default=True, help="cpu, or comma-separated CUDA device ids.")
@click.option("--parallel", default=1, show_default=True, type=click.IntRange(1), help="Jobs at once per device.")
@click.option("--write", type=click.Path(path_type=Path), default=None, help="Write the results block into FILE.")
@with_reported_errors
def run_study(env: str | None, params: str | None, devices: str, parallel: int, write: Path | None) -> None:
    """Data pipelines once, every job not yet FINISHED in MLflow, then the summary."""
    from thitogene_kedro import study as studies  # noqa: PLC0415
    from thitogene_kedro.study import job_parameters, params_option  # noqa: PLC0415
    from thitogene_kedro.sweep import finished_runs  # noqa: PLC0415

    project, runtime = Path.cwd(), parse_params(params)
    run = _study_run(project, env, runtime, _study_command("run", env, params))
    variants, seeds = len(run.study.chosen_variants), len(run.study.seeds)
    click.echo(f"study {run.study.experiment}: {len(run.jobs)} jobs ({variants} variants × {seeds} seeds × "
               f"{len(run.jobs) // variants // seeds} folds)")  # fmt: skip
    with _session(project, env, runtime) as session:
        session.run(pipeline_names=run.data_pipelines)
    catalog = studies.per_run_suffix(lambda p: _config_loader(project, env, p)["catalog"])
    recorded = studies.records.recorded(run.study.record_folder(project), [job.run_name for job in run.jobs])
    todo = studies.pending(run.jobs, set(finished_runs(run.study.experiment)), recorded)
    if devices == "cpu" and parallel == 1:
        failed = studies.run_in_process(run, todo, _session, catalog)
    else:
        jobs = {job.run_name: job for _, job in todo}
        codes = run_side_by_side(
            list(jobs), devices.split(","), parallel,
            lambda name: kedro_command("--pipelines", run.pipeline(jobs[name]), "--namespaces", jobs[name].fold, env=env,
                                       params=params_option(job_parameters(jobs[name], run.study, runtime))),
            project / "logs" / "study",
        )  # fmt: skip
        failed = sorted(name for name, code in codes.items() if code)
    studies.summarise(run, catalog, write, _study_command("run", env, params))
    if failed:
        raise click.ClickException(f"{len(failed)} of {len(run.jobs)} study jobs failed: {' '.join(failed)}; "
                                   "run the command again to retry them")  # fmt: skip


@study.command(name="summarise")
@click.option("--env", "-e", default=None, help="Kedro environment.")
@click.option("--params", default=None, help="Runtime parameters, as for kedro study run.")
@click.option("--write", type=click.Path(path_type=Path), default=None, help="Write the results block into FILE.")
@with_reported_errors
def summarise_study(env: str | None, params: str | None, write: Path | None) -> None:
    """Read the study's finished runs back and write its results (a summary MLflow run; FILE)."""
    from thitogene_kedro import study as studies  # noqa: PLC0415

    project, runtime = Path.cwd(), parse_params(params)
    run = _study_run(project, env, runtime, _study_command("summarise", env, params))
    results = studies.summarise(run, lambda p: _config_loader(project, env, p)["catalog"], write,
                                _study_command("summarise", env, params))  # fmt: skip
    click.echo(results.per_variant.to_string(index=False))
