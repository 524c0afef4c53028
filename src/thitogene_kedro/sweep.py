"""A cross-validation sweep on a cluster: job index ↔ (fold, variant, seed), and the MLflow side.

    python -m thitogene_kedro.sweep job INDEX                               (FOLDS, VARIANTS, SEEDS from env)
    python -m thitogene_kedro.sweep create-experiment NAME
    python -m thitogene_kedro.sweep missing-indices --experiment NAME     (FOLDS, VARIANTS, SEEDS from env)
    python -m thitogene_kedro.sweep summarise --experiment NAME [--expected-runs N] [--output DIR]
    python -m thitogene_kedro.sweep render TEMPLATE            (a deploy/k8s manifest, ${NAME} from env)

One job = one fold of one variant (``training.model.name``) and seed = one ``kedro run`` = one MLflow
run named ``<fold>-<variant>-s<seed>`` (``deploy/run_fold_index.sh``). Index i runs fold i % F,
variant (i // F) % V, seed i // (F·V); ``job INDEX`` prints ``fold variant seed`` for the job script.
``MLFLOW_TRACKING_URI`` says where the runs are.
"""

from __future__ import annotations

import argparse
import itertools
import logging
import math
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from string import Template
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # mlflow and pandas load only in the commands that need them: every fold job runs ``job``
    from collections.abc import Iterable

    import mlflow
    import pandas as pd

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Job:
    """One job of a sweep."""

    fold: str
    variant: str
    seed: str

    @property
    def run_name(self) -> str:
        return f"{self.fold}-{self.variant}-s{self.seed}"

    @classmethod
    def from_run_name(cls, name: str) -> Job:
        """The job a run name of :attr:`run_name`'s form was given for."""
        fold, _, rest = name.partition("-")
        variant, _, seed = rest.rpartition("-s")
        return cls(fold, variant, seed)


# The models that take frozen-encoder features (their class's ``input_kind``), named here so that the
# fold-job script learns a job's pipeline without importing torch; tests/test_sweep.py checks the two agree.
FEATURE_MODELS = frozenset({"thitogene_head", "linear_probe"})


def training_pipeline(model: str) -> str:
    """The pipeline whose fold namespaces train ``model``: ``feature_training`` for a model on
    frozen-encoder features, else ``training`` (an unknown name too: its parameters name it)."""
    return "feature_training" if model in FEATURE_MODELS else "training"


def data_pipelines(training_pipelines: Iterable[str]) -> list[str]:
    """What runs once before fold jobs of these training pipelines: preprocessing and graph
    building, ``patching`` for models on patches and ``features`` for models on frozen features."""
    kinds = set(training_pipelines)
    patching = ["patching"] if "training" in kinds else []
    features = ["features"] if "feature_training" in kinds else []
    return ["preprocessing", *patching, "graph_building", *features]


def job_at(index: int, folds: list[str], variants: list[str], seeds: list[str]) -> Job:
    """The job of array index ``index`` (the mapping ``deploy/run_fold_index.sh`` uses)."""
    total = len(folds) * len(variants) * len(seeds)
    if not 0 <= index < total:
        raise IndexError(f"index {index} outside 0..{total - 1}")
    return Job(
        folds[index % len(folds)],
        variants[index // len(folds) % len(variants)],
        seeds[index // (len(folds) * len(variants))],
    )


def all_jobs(folds: list[str], variants: list[str], seeds: list[str]) -> list[Job]:
    return [job_at(i, folds, variants, seeds) for i in range(len(folds) * len(variants) * len(seeds))]


def create_experiment(name: str) -> str:
    """The experiment's id, creating it if needed; run once before a fan-out (concurrent first use races)."""
    import mlflow  # noqa: PLC0415 - see the imports
    from mlflow.exceptions import MlflowException  # noqa: PLC0415

    client = mlflow.MlflowClient()
    existing = client.get_experiment_by_name(name)
    if existing is not None:
        return existing.experiment_id
    try:
        return client.create_experiment(name)
    except MlflowException:  # created meanwhile by someone else
        return client.get_experiment_by_name(name).experiment_id


def finished_runs(experiment: str) -> dict[str, mlflow.entities.Run]:
    """The latest FINISHED run per run name in ``experiment``."""
    import mlflow  # noqa: PLC0415 - see the imports

    found = mlflow.MlflowClient().get_experiment_by_name(experiment)
    if found is None:
        return {}
    runs = mlflow.search_runs(
        experiment_ids=[found.experiment_id],
        filter_string="attributes.status = 'FINISHED'",
        order_by=["attributes.start_time ASC"],
        output_format="list",
    )
    return {run.info.run_name: run for run in runs}


def missing_indices(experiment: str, folds: list[str], variants: list[str], seeds: list[str]) -> list[int]:
    """Indices whose job has no FINISHED run: what to resubmit (finished folds stay untouched)."""
    done = finished_runs(experiment)
    return [i for i, job in enumerate(all_jobs(folds, variants, seeds)) if job.run_name not in done]


def section_scores(experiment: str) -> pd.DataFrame:
    """One row per (run, held-out section): variant, seed, fold, section, held-out mean PCC."""
    import pandas as pd  # noqa: PLC0415 - see the imports

    from thitogene_kedro.training.metric_names import parse_held_out  # noqa: PLC0415

    rows = []
    for name, run in finished_runs(experiment).items():
        job = Job.from_run_name(name)
        for key, value in run.data.metrics.items():
            parsed = parse_held_out(job.fold, key)
            if parsed is not None and parsed[1] == "pcc_mean":
                section = parsed[0]
                row = {"run_name": name, "variant": job.variant, "seed": job.seed, "fold": job.fold}
                rows.append({**row, "section": section, "pcc_mean": value})
    columns = ["run_name", "variant", "seed", "fold", "section", "pcc_mean"]
    return pd.DataFrame(rows, columns=columns).sort_values(["variant", "seed", "fold", "section"], ignore_index=True)


def summarise_sweep(scores: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per variant: runs, folds, mean/median/SD of the section PCC (seeds averaged per section);
    per pair of variants: :func:`~thitogene_kedro.metrics.paired_comparison` on their common sections."""
    import pandas as pd  # noqa: PLC0415 - see the imports

    from thitogene_kedro.metrics import paired_comparison  # noqa: PLC0415 - imports scipy

    per_section = scores.groupby(["variant", "section"], as_index=False)["pcc_mean"].mean()
    summary = (
        per_section.groupby("variant")["pcc_mean"]
        .agg(sections="count", pcc_mean="mean", pcc_median="median", pcc_sd="std")
        .join(scores.groupby("variant").agg(runs=("run_name", "nunique"), folds=("fold", "nunique")))
        .reset_index()
    )
    pairs = []
    wide = per_section.pivot(index="section", columns="variant", values="pcc_mean")
    for a, b in itertools.combinations(sorted(wide.columns), 2):
        common = wide[[a, b]].dropna()
        pairs.append({"variant_a": a, "variant_b": b, **paired_comparison(common[a], common[b])})
    return summary, pd.DataFrame(pairs)


def number_cell(value: float) -> str:
    """A number to 3 decimals; a missing one (an SD over one seed) as a dash."""
    return "–" if math.isnan(value) else f"{value:.3f}"


def markdown_table(frame: pd.DataFrame) -> str:
    """A pipe table (numbers to 3 decimals)."""
    cells = [[number_cell(v) if isinstance(v, float) else str(v) for v in row] for row in frame.itertuples(index=False)]
    lines = ["| " + " | ".join(frame.columns) + " |", "|" + "---|" * len(frame.columns)]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in cells])


def summarise(experiment: str, output: Path, expected_runs: int = 0) -> int:
    """Write sections.csv, summary.csv, comparison.csv and summary.md; 1 if runs are missing."""
    scores = section_scores(experiment)
    summary, comparison = summarise_sweep(scores)
    output.mkdir(parents=True, exist_ok=True)
    scores.to_csv(output / "sections.csv", index=False)
    summary.to_csv(output / "summary.csv", index=False)
    comparison.to_csv(output / "comparison.csv", index=False)
    n_runs = scores["run_name"].nunique()
    lines = [f"# Sweep `{experiment}`", "", f"{n_runs} finished runs with held-out scores.", ""]
    lines += [markdown_table(summary), ""]
    if not comparison.empty:
        lines += ["Paired comparison over common held-out sections:", "", markdown_table(comparison)]
    (output / "summary.md").write_text("\n".join(lines) + "\n")
    logger.info("sweep %s: %d runs summarised in %s", experiment, n_runs, output)
    if expected_runs and n_runs < expected_runs:
        logger.error("sweep %s: %d of %d runs finished", experiment, n_runs, expected_runs)
        return 1
    return 0


def render(template: str, values: dict[str, str]) -> str:
    """``template`` with every ``${NAME}`` replaced; a missing value is an error naming it."""
    try:
        return Template(template).substitute(values)
    except KeyError as missing:
        raise SystemExit(f"render: no value for {missing.args[0]} (set it in the environment)") from None


def _env_list(name: str, default: str | None = None) -> list[str]:
    value = os.environ.get(name, default)
    if not value:
        raise SystemExit(f"{name} is not set")
    return value.split()


def _sweep_axes() -> tuple[list[str], list[str], list[str]]:
    """``FOLDS``, ``VARIANTS`` (default thitogene) and ``SEEDS`` (default 0) from the environment."""
    return _env_list("FOLDS"), _env_list("VARIANTS", "thitogene"), _env_list("SEEDS", "0")


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    parser = argparse.ArgumentParser(prog="python -m thitogene_kedro.sweep", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    job = commands.add_parser("job")
    job.add_argument("index", type=int)
    create = commands.add_parser("create-experiment")
    create.add_argument("name")
    missing = commands.add_parser("missing-indices")
    missing.add_argument("--experiment", required=True)
    summary = commands.add_parser("summarise")
    summary.add_argument("--experiment", required=True)
    summary.add_argument("--expected-runs", type=int, default=0)
    summary.add_argument("--output", type=Path)
    commands.add_parser("data-pipelines", help="the data pipelines the fold jobs of VARIANTS need, comma-joined")
    rendering = commands.add_parser("render")
    rendering.add_argument("template", type=Path)
    args = parser.parse_args(argv)
    if args.command == "job":
        try:
            chosen = job_at(args.index, *_sweep_axes())
        except IndexError as error:
            raise SystemExit(f"job: {error}") from None
        print(chosen.fold, chosen.variant, chosen.seed, training_pipeline(chosen.variant))  # noqa: T201
        return 0
    if args.command == "data-pipelines":
        print(",".join(data_pipelines(map(training_pipeline, _env_list("VARIANTS", "thitogene")))))  # noqa: T201
        return 0
    if args.command == "render":
        print(render(args.template.read_text(), dict(os.environ)), end="")  # noqa: T201
        return 0
    if args.command == "create-experiment":
        print(create_experiment(args.name))  # noqa: T201
        return 0
    if args.command == "missing-indices":
        indices = missing_indices(args.experiment, *_sweep_axes())
        print(",".join(map(str, indices)))  # noqa: T201
        return 0
    output = args.output or Path("data/08_reporting/sweeps") / args.experiment
    return summarise(args.experiment, output, args.expected_runs)


if __name__ == "__main__":
    sys.exit(main())
