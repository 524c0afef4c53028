"""The study: every variant × seed × fold as its own MLflow run, and its results over seeds.

    kedro study run [--env ENV] [--params K=V,...] [--parallel N] [--devices cpu|0,1]
    kedro study summarise [--env ENV] [--params K=V,...] [--write FILE]

``study`` (``conf/base/parameters_study.yml``) names the variants (each a set of runtime parameter
overrides: a model, an ablation switch, a precision), the seeds and the MLflow experiment. ``run``
plans the folds (``kedro folds plan``), prepares the data once, then trains and scores each job,
one fold of one variant and seed, as one MLflow run named ``<fold>-<variant>-s<seed>``
(:class:`~thitogene_kedro.sweep.Job`) tagged with the variant and the seed, its files kept apart
by ``run_suffix``. Jobs with a FINISHED run are skipped and an interrupted fold resumes from its
checkpoint, so running the command again resumes the study. ``--parallel 1`` on the CPU runs the
jobs one after another in this process (no start-up per job); otherwise ``--parallel`` ``kedro
run`` processes run at a time on each device (``kedro folds run``'s scheduler). ``summarise`` reads the runs back and writes the results (per variant mean ± SD
over seeds, per section, paired Wilcoxon tests over (section, seed) pairs against the reference
variant, the top genes) into its own MLflow run and, with ``--write``, into a results file.
"""

from __future__ import annotations

import itertools
import logging
import os
import platform
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, field_validator

from thitogene_kedro import study_records as records
from thitogene_kedro.errors import RunInterrupted
from thitogene_kedro.markdown_blocks import write_block
from thitogene_kedro.metrics import paired_comparison
from thitogene_kedro.models.registry import deep_merge
from thitogene_kedro.sweep import Job, data_pipelines, finished_runs, markdown_table, training_pipeline
from thitogene_kedro.training.metric_names import parse_held_out

logger = logging.getLogger(__name__)

SUMMARY_RUN = "summary"
BLOCK = "study"  # the results file's block (markdown_blocks) for the default experiment


def output_name(experiment: str) -> str:
    """The results file's block of ``experiment`` and the prefix of its figure and page files:
    ``study`` for the default experiment, else the experiment's own name, so a second study (the
    paper configuration) writes beside the first instead of over it."""
    return BLOCK if experiment == StudyParams.model_fields["experiment"].default else experiment


class StudyParams(BaseModel):
    """The ``study`` parameters (``conf/base/parameters_study.yml``)."""

    model_config = ConfigDict(extra="forbid")

    experiment: str = "thitogene_study"
    seeds: list[int] = Field(default_factory=lambda: [0, 1, 2], min_length=1)
    folds: Literal["all"] | list[str] = "all"
    reference: str = "thitogene"
    variants: dict[str, dict[str, Any]] = Field(default_factory=lambda: {"thitogene": {}}, min_length=1)
    run_variants: Literal["all"] | list[str] = "all"
    top_genes: int = Field(5, ge=1)
    record_dir: str = "docs/study_records"  # one JSON per finished job, under <record_dir>/<experiment>/
    # "<experiment>/<variant>": another study's records of that variant, a variant of the summary by that name
    compare_with: list[str] = Field(default_factory=list)

    def record_folder(self, project: Path) -> Path:
        """Where this study's job records are kept (:mod:`thitogene_kedro.study_records`)."""
        return project / self.record_dir / self.experiment

    @property
    def chosen_variants(self) -> list[str]:
        """The variants this study runs (``run_variants``), in ``variants``' order."""
        return [v for v in self.variants if self.run_variants == "all" or v in self.run_variants]

    @field_validator("seeds", "folds", "run_variants", "compare_with", mode="before")
    @classmethod
    def _split_words(cls, value: Any) -> Any:
        """``--params "study.seeds=0 1"`` gives one string: its words are the list."""
        if isinstance(value, str) and value != "all":
            return value.split()
        return [value] if isinstance(value, int) else value

    def model_post_init(self, _context: Any) -> None:
        if self.reference not in self.variants:
            raise ValueError(
                f"study.reference: {self.reference!r} is not one of study.variants {sorted(self.variants)}"
            )
        bad = [name for name in self.variants if "-" in name or not name]
        if bad:
            raise ValueError(f"study.variants: names may not contain '-' (run names split on it): {bad}")
        unknown = [] if self.run_variants == "all" else sorted(set(self.run_variants) - set(self.variants))
        if unknown:
            raise ValueError(f"study.run_variants: {unknown} are not among study.variants {sorted(self.variants)}")
        if self.reference not in self.chosen_variants:
            raise ValueError(f"study.run_variants must include the reference variant {self.reference!r}")
        malformed = [entry for entry in self.compare_with if entry.count("/") != 1 or "" in entry.split("/")]
        if malformed:
            raise ValueError(
                f"study.compare_with: {malformed} are not <experiment>/<variant> (e.g. thitogene_study/thitogene)"
            )


def study_jobs(study: StudyParams, folds: Sequence[str]) -> list[Job]:
    """The jobs, seed by seed and variant by variant, so that early results are already paired."""
    chosen = [f for f in folds if study.folds == "all" or f.removeprefix("fold_") in study.folds or f in study.folds]
    return [Job(f, v, str(s)) for s, v, f in itertools.product(study.seeds, study.chosen_variants, chosen)]


def job_parameters(job: Job, study: StudyParams, base: dict[str, Any]) -> dict[str, Any]:
    """Runtime parameters of one job: ``base``, the variant's overrides, the seed and the run's names."""
    names = {
        "run_name": job.run_name,
        "run_suffix": f"-{job.variant}-s{job.seed}",
        "mlflow_experiment": study.experiment,
        "training": {"seed": int(job.seed)},
    }
    return deep_merge(deep_merge(base, study.variants[job.variant]), names)


def flatten(params: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` → ``{"a.b": 1}`` (the ``--params`` form)."""
    flat = {}
    for key, value in params.items():
        if isinstance(value, dict) and value:
            flat |= flatten(value, f"{prefix}{key}.")
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def params_option(params: dict[str, Any]) -> str:
    """``--params`` text for ``kedro run`` (lists joined by spaces, as the parameters accept them)."""
    items = []
    for key, value in flatten(params).items():
        text = " ".join(map(str, value)) if isinstance(value, list) else value
        items.append(f"{key}={str(text).lower() if isinstance(text, bool) else text}")
    return ",".join(items)


# ---------------------------------------------------------------- results


@dataclass(frozen=True)
class StudyResults:
    """What :func:`summarise_study` computes from the per-section scores."""

    scores: pd.DataFrame  # variant, seed, fold, section, pcc_mean (one row per job and held-out section)
    per_variant: pd.DataFrame  # variant, seeds, folds, pcc_mean (over seeds of the mean over sections), pcc_sd
    per_section: pd.DataFrame  # section × variant: "mean ± SD" over seeds
    paired: pd.DataFrame  # reference against each other variant over (section, seed) pairs


def section_cell(stats: pd.Series) -> str:
    """ "mean ± SD (seeds)" of one section and variant; no SD from one seed."""
    if stats["count"] < 2:  # noqa: PLR2004 - an SD needs two seeds
        return f"{stats['mean']:.3f} (1)"
    return f"{stats['mean']:.3f} ± {stats['std']:.3f} ({int(stats['count'])})"


def summarise_study(scores: pd.DataFrame, reference: str, variants: Sequence[str]) -> StudyResults:
    """Per variant the mean ± SD over seeds of the mean held-out PCC (seeds with every fold only),
    per section the mean ± SD over seeds, and paired Wilcoxon tests of ``reference`` against each
    other variant over the (section, seed) pairs both have."""
    scores = scores[scores["variant"].isin(variants)]
    folds = scores["fold"].nunique()
    per_seed = scores.groupby(["variant", "seed"]).agg(folds=("fold", "nunique"), pcc_mean=("pcc_mean", "mean"))
    complete = per_seed[per_seed["folds"] == folds].reset_index()
    per_variant = (
        complete.groupby("variant")
        .agg(seeds=("seed", "nunique"), pcc_mean=("pcc_mean", "mean"), pcc_sd=("pcc_mean", "std"))
        .reindex([v for v in variants if v in set(complete["variant"])])
        .reset_index()
    )
    per_variant.insert(2, "folds", folds)
    stats = scores.groupby(["section", "variant"])["pcc_mean"].agg(["mean", "std", "count"])
    cells = stats.apply(section_cell, axis=1)
    per_section = cells.unstack("variant").reindex(columns=[v for v in variants if v in set(scores["variant"])])
    rows = []
    keyed = scores.set_index(["section", "seed"])
    for other in [v for v in variants if v != reference]:
        pairs = keyed[keyed["variant"] == reference][["pcc_mean"]].join(
            keyed[keyed["variant"] == other][["pcc_mean"]], how="inner", lsuffix="_a", rsuffix="_b"
        )
        if pairs.empty:
            continue
        compared = paired_comparison(pairs["pcc_mean_a"], pairs["pcc_mean_b"])
        rows.append({"reference": reference, "variant": other, "pairs": compared.pop("sections"), **compared})
    return StudyResults(scores, per_variant, per_section.rename_axis(columns=None).reset_index(), pd.DataFrame(rows))


def top_genes(gene_scores: pd.DataFrame, n: int) -> pd.DataFrame:
    """Per variant the ``n`` genes with the highest mean −log10 p over sections and seeds among those
    with a positive mean PCC (the paper's Figure 4 ranking; a significant negative correlation is
    not a prediction), with their mean PCC. −log10 p is capped at 300 (p below float64's range)."""
    gene_scores = gene_scores.assign(neg_log10_p=gene_scores["neg_log10_p"].clip(upper=300.0))
    means = gene_scores.groupby(["variant", "gene"], as_index=False).agg(
        neg_log10_p=("neg_log10_p", "mean"), pcc=("pcc", "mean"), pairs=("pcc", "size")
    )
    ranked = means[means["pcc"] > 0].sort_values(["variant", "neg_log10_p"], ascending=[True, False])
    return ranked.groupby("variant").head(n).reset_index(drop=True)


def top_genes_table(genes: pd.DataFrame, variants: Sequence[str]) -> pd.DataFrame:
    """Rank × variant: ``GENE (mean −log10 p, mean PCC)``."""
    if genes.empty:
        return pd.DataFrame()
    cells = genes.assign(
        rank=genes.groupby("variant").cumcount() + 1,
        cell=[
            f"{g} ({p:.1f}, {r:.2f})" for g, p, r in zip(genes["gene"], genes["neg_log10_p"], genes["pcc"], strict=True)
        ],
    )
    table = cells.pivot(index="rank", columns="variant", values="cell")
    return table.reindex(columns=[v for v in variants if v in table.columns]).fillna("").reset_index()


def results_markdown(
    results: StudyResults, genes: pd.DataFrame, header: dict[str, str], jobs: tuple[int, int], where: pd.DataFrame
) -> str:
    """The results block: provenance, where the jobs ran, the tables and how far the study got."""
    done, total = jobs
    lines = [""]
    lines += [f"- {key}: {value}" for key, value in header.items()]
    lines += [f"- jobs finished: {done} of {total}" + ("" if done == total else " (partial: rerun to resume)"), ""]
    if not where.empty:
        lines += ["Where the jobs ran (from their records):", "", markdown_table(where), ""]
    lines += ["Mean held-out PCC per variant: the mean over the held-out sections of one seed, then mean ± SD"]
    lines += ["over the seeds whose every fold finished:", "", markdown_table(results.per_variant), ""]
    lines += ["Per held-out section, mean ± SD over seeds (number of seeds):", "", markdown_table(results.per_section)]
    if not results.paired.empty:
        lines += ["", "Paired over (section, seed): the reference variant (a) against each other (b); two-sided"]
        lines += ["Wilcoxon signed-rank test of a − b:", "", markdown_table(results.paired)]
    if not genes.empty:
        lines += ["", "Top genes by mean −log10 p over sections and seeds, among those with a positive mean PCC"]
        lines += ["(the paper's Figure 4 ranking); each cell: gene (mean −log10 p, mean PCC):", ""]
        lines += [markdown_table(top_genes_table(genes, list(results.per_variant["variant"])))]
    return "\n".join([*lines, ""])


def study_report(
    results: StudyResults,
    genes: pd.DataFrame,
    header: dict[str, str],
    figures: dict[str, Any],
    jobs: tuple[int, int],
    where: pd.DataFrame,
) -> str:
    """The study's results as one self-contained HTML page (``report.build_report``)."""
    from thitogene_kedro.report import build_report  # noqa: PLC0415

    tables = {
        "Mean held-out PCC per variant (mean ± SD over seeds)": results.per_variant,
        "Per held-out section (mean ± SD over seeds)": results.per_section,
        "Paired over (section, seed): reference against each variant": results.paired,
        "Top genes by mean −log10 p": genes,
        "Where the jobs ran": where,
    }
    notes = {
        "Paired over (section, seed): reference against each variant": "two-sided Wilcoxon signed-rank test of a − b",
        "Top genes by mean −log10 p": "among genes with a positive mean PCC (the paper's Figure 4 ranking)",
    }
    done, total = jobs
    return build_report(
        f"thitogene-kedro study: {done} of {total} jobs", tables, figures, notes, provenance=header,
        searchable=("Top genes by mean −log10 p",),
        why_empty={"Paired over (section, seed): reference against each variant": "one variant, or no complete seed"},
    )  # fmt: skip


# ---------------------------------------------------------------- running


@dataclass(frozen=True)
class StudyRun:
    """How one study runs: the project, its environment and runtime parameters, the jobs and the
    pipeline each variant trains with (``variant_pipelines``; ``training`` where absent)."""

    project: Path
    env: str | None
    params: dict[str, Any]
    study: StudyParams
    jobs: list[Job]
    pipelines: Mapping[str, str] = field(default_factory=dict)

    def pipeline(self, job: Job) -> str:
        """The pipeline whose ``job.fold`` namespace trains and scores ``job``."""
        return self.pipelines.get(job.variant, "training")

    @property
    def data_pipelines(self) -> list[str]:
        """What runs once before the jobs (:func:`thitogene_kedro.sweep.data_pipelines`)."""
        return data_pipelines(self.pipeline(job) for job in self.jobs)


def variant_pipelines(study: StudyParams, training: Mapping[str, Any]) -> dict[str, str]:
    """Per chosen variant, the pipeline that trains its model (its own ``training.model.name``, else
    the configured ``training``'s): :func:`thitogene_kedro.sweep.training_pipeline`."""
    configured = training.get("model", {}).get("name", "thitogene")
    return {
        variant: training_pipeline(study.variants[variant].get("training", {}).get("model", {}).get("name", configured))
        for variant in study.chosen_variants
    }


def pending(jobs: Sequence[Job], finished: set[str], recorded: set[str]) -> list[tuple[int, Job]]:
    """``(k, job)`` for each job neither FINISHED in MLflow nor recorded (k counts all jobs); logs
    how many are skipped and why."""
    in_store, on_record = sum(j.run_name in finished for j in jobs), sum(j.run_name in recorded for j in jobs)
    skipped = sum(job.run_name in finished | recorded for job in jobs)
    if skipped:
        logger.info("study: %d of %d jobs already finished (%d FINISHED in MLflow, %d recorded); skipping them",
                    skipped, len(jobs), in_store, on_record)  # fmt: skip
    return [(k, job) for k, job in enumerate(jobs, start=1) if job.run_name not in finished | recorded]


def run_in_process(
    run: StudyRun,
    todo: Sequence[tuple[int, Job]],
    session: Callable[..., Any],
    catalog_config: Callable[[dict[str, Any]], dict],
) -> list[str]:
    """Run jobs one after another in this process, recording each as it finishes; returns the
    failed run names."""
    import mlflow  # noqa: PLC0415 - only where jobs run

    failed = []
    for k, job in todo:
        logger.info("study: job %d of %d: %s", k, len(run.jobs), job.run_name)
        try:
            with session(run.project, run.env, job_parameters(job, run.study, run.params)) as kedro:
                kedro.run(pipeline_names=[run.pipeline(job)], namespaces=[job.fold])
            record_finished(run, catalog_config, [job])
        except (KeyboardInterrupt, RunInterrupted):
            while mlflow.active_run():
                mlflow.end_run(status="KILLED")
            logger.error("study interrupted in job %d of %d (%s); run the command again to resume", k, len(run.jobs),
                         job.run_name)  # fmt: skip
            raise
        except Exception as error:  # noqa: BLE001 - one failed job must not stop the others
            logger.error("study: job %s failed: %s", job.run_name, error)
            failed.append(job.run_name)
    return failed


def per_run_suffix(catalog_config: Callable[[dict[str, Any]], dict]) -> Callable[[dict[str, Any]], dict]:
    """``catalog_config`` loaded once per ``run_suffix``: the catalog's paths depend on it alone, so
    one configuration serves every fold and entry of a (variant, seed)."""
    loaded: dict[str, dict] = {}

    def load(params: dict[str, Any]) -> dict:
        suffix = str(params.get("run_suffix", ""))
        if suffix not in loaded:
            loaded[suffix] = catalog_config(params)
        return loaded[suffix]

    return load


def job_dataset(run: StudyRun, catalog_config: Callable[[dict[str, Any]], dict], job: Job, entry: str) -> Any:
    """The catalog entry ``{fold}.<entry>`` of one job, with its ``run_suffix`` (an MLflow artifact
    entry gives its local dataset)."""
    from kedro.io import AbstractDataset  # noqa: PLC0415

    config = catalog_config(job_parameters(job, run.study, run.params))[f"{{fold}}.{entry}"]
    config = config.get("dataset", config) if "MlflowArtifactDataset" in str(config.get("type")) else config
    config = {k: v.replace("{fold}", job.fold) if isinstance(v, str) else v for k, v in config.items()}
    return AbstractDataset.from_config(f"{job.fold}.{entry}", config)


def study_figures(
    run: StudyRun,
    catalog_config: Callable[[dict[str, Any]], dict],
    recorded: Mapping[str, Mapping[str, Any]],
    genes: pd.DataFrame,
) -> dict[str, Any]:
    """The study's figures: training curves per variant over its recorded jobs, and observed against
    every variant's held-out prediction of the reference's top genes (Figure 4) on the first fold's
    section at the lowest seed, drawn where this project's data folder holds those predictions
    (jobs recorded on another machine have none here)."""
    from thitogene_kedro.plotting import variant_curves, variant_maps  # noqa: PLC0415 - matplotlib on demand

    curves = records.histories(recorded)
    figures = {"study_training_curves": variant_curves(curves)} if curves else {}
    top = genes[genes["variant"] == run.study.reference]["gene"].head(3).tolist() if not genes.empty else []
    finished = [job for job in run.jobs if job.run_name in recorded]
    if not finished or not top:
        return figures
    fold, seed = finished[0].fold, min(job.seed for job in finished)
    predicted = {}
    for job in finished:
        dataset = job_dataset(run, catalog_config, job, "test_predictions")
        if job.fold == fold and job.seed == seed and dataset.exists():
            predicted[job.variant] = dataset.load()
    if run.study.reference not in predicted:
        logger.info("study: no Figure 4 maps: the held-out predictions of %s (seed %s) are not in this project's "
                    "data folder", fold, seed)  # fmt: skip
        return figures
    observed = predicted[run.study.reference]
    section = str(observed.obs["section"].iloc[0])
    observed = observed[observed.obs["section"] == section]
    figures["study_top_gene_maps"] = variant_maps(section, observed, predicted, top)
    return figures


def commit_text(project: Path) -> str:
    """The checkout's commit, ``(with uncommitted changes)`` when dirty, or ``unknown``."""
    from thitogene_kedro.provenance import git_commit  # noqa: PLC0415

    found = git_commit(project)
    return f"{found[0][:10]}{' (with uncommitted changes)' if found[1] else ''}" if found else "unknown"


def record_finished(
    run: StudyRun, catalog_config: Callable[[dict[str, Any]], dict], jobs: Sequence[Job] | None = None
) -> None:
    """Record each of ``jobs`` (all by default) that is FINISHED in MLflow and has no record yet."""
    folder = run.study.record_folder(run.project)
    candidates = list(jobs or run.jobs)
    done = records.recorded(folder, [job.run_name for job in candidates])
    finished = finished_runs(run.study.experiment)
    for job in [j for j in candidates if j.run_name in finished and j.run_name not in done]:
        scores, history = (job_dataset(run, catalog_config, job, e) for e in ("test_gene_scores", "history"))
        if not (scores.exists() and history.exists()):
            logger.warning("study: %s is FINISHED in MLflow but its gene scores or history are not in this "
                           "project's data folder; not recorded", job.run_name)  # fmt: skip
            continue
        mlflow_run = finished[job.run_name]
        held_out: dict[str, dict[str, float]] = {}
        for key, value in mlflow_run.data.metrics.items():
            if (parsed := parse_held_out(job.fold, key)) is not None:
                held_out.setdefault(parsed[0], {})[parsed[1]] = value
        origin = records.machine_origin() | {
            "commit": commit_text(run.project),
            "mlflow_run_id": mlflow_run.info.run_id,
        }
        record = records.job_record(job, held_out, scores.load(), history.load(), origin)
        logger.info("study: recorded %s in %s", job.run_name, records.write_record(folder, record))


def provenance(run: StudyRun, command: str) -> dict[str, str]:
    """Who, where and how: the results block's header lines."""
    return {
        "command": f"`{command}`",
        "written": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, {platform.platform(terse=True)}",
        "commit": commit_text(run.project),
        "environment": run.env or "base",
        "MLflow experiment": f"`{run.study.experiment}`",
        "variants": ", ".join(
            f"`{name}`: {params_option(run.study.variants[name]) or 'as configured'}"
            for name in run.study.chosen_variants
        ),
        "seeds": " ".join(map(str, run.study.seeds)),
    }


def log_summary_run(
    run: StudyRun, results: StudyResults, genes: pd.DataFrame, markdown: str, figures: dict[str, Any]
) -> str:
    """The summary as its own MLflow run in the study's experiment; returns its id."""
    import mlflow  # noqa: PLC0415

    mlflow.set_experiment(run.study.experiment)
    with mlflow.start_run(run_name=SUMMARY_RUN, tags={"study_role": "summary"}) as active:
        for row in results.per_variant.itertuples(index=False):
            mlflow.log_metrics({f"{row.variant}.pcc_mean_over_seeds": row.pcc_mean, f"{row.variant}.seeds": row.seeds})
            if not np.isnan(row.pcc_sd):
                mlflow.log_metric(f"{row.variant}.pcc_sd_over_seeds", row.pcc_sd)
        with tempfile.TemporaryDirectory() as folder:
            for name, frame in {"sections": results.scores, "per_variant": results.per_variant,
                                "per_section": results.per_section, "paired": results.paired, "top_genes": genes}.items():  # fmt: skip
                frame.to_csv(Path(folder) / f"{name}.csv", index=False)
            (Path(folder) / "results.md").write_text(markdown)
            for name, part in figures.items():
                if isinstance(part, str):  # the HTML page
                    (Path(folder) / name).write_text(part)
                else:
                    part.save(Path(folder) / f"{name}.png")
            mlflow.log_artifacts(folder, "study")
        return active.info.run_id


def compared_records(run: StudyRun) -> dict[str, dict[str, Any]]:
    """``study.compare_with``'s records: another study's jobs of one variant on this study's folds
    and seeds, named ``<experiment>/<variant>`` so they join the summary as a variant that is
    paired with the reference (not trained here). None found is an error naming the folder."""
    found: dict[str, dict[str, Any]] = {}
    for entry in run.study.compare_with:
        experiment, variant = entry.split("/")
        folder = run.project / run.study.record_dir / experiment
        wanted = sorted({Job(job.fold, variant, job.seed).run_name for job in run.jobs})
        these = records.read_records(folder, wanted)
        if not these:
            raise ValueError(
                f"study.compare_with {entry!r}: no records of {variant!r} on this study's folds and seeds in "
                f"{folder} (expected e.g. {wanted[0]}.json); run that study first or fix the name"
            )
        found |= {f"{experiment}/{key}": record | {"variant": entry} for key, record in these.items()}
    return found


def summarise(
    run: StudyRun, catalog_config: Callable[[dict[str, Any]], dict], write: Path | None, command: str
) -> StudyResults:
    """Record the study's finished runs, compute its results from the records, log them as the
    summary run and write ``write``."""
    catalog_config = per_run_suffix(catalog_config)
    record_finished(run, catalog_config)
    recorded = records.read_records(run.study.record_folder(run.project), [job.run_name for job in run.jobs])
    compared = compared_records(run)
    variants = run.study.chosen_variants + run.study.compare_with
    results = summarise_study(records.section_scores(recorded | compared), run.study.reference, variants)
    genes = top_genes(records.gene_scores(recorded), run.study.top_genes)
    figures = study_figures(run, catalog_config, recorded, genes)
    jobs = (len(recorded), len(run.jobs))
    header = provenance(run, command) | {"records": f"`{run.study.record_folder(Path()).as_posix()}/`"}
    if compared:
        header["compared with"] = ", ".join(
            f"`{name}`: {sum(r['variant'] == name for r in compared.values())} jobs of "
            f"`{run.study.record_dir}/{name.partition('/')[0]}/`"
            for name in run.study.compare_with
        )
    where = records.origins(recorded)
    markdown = results_markdown(results, genes, header, jobs, where)
    page = study_report(results, genes, header, figures, jobs, where)
    block = prefix = output_name(run.study.experiment)
    if write is not None:  # beside the results file, linked from its block
        folder = write.parent / "figures"
        folder.mkdir(parents=True, exist_ok=True)
        files = {name: f"{name.replace('study', prefix, 1)}.png" for name in figures}
        for name, image in figures.items():
            image.save(folder / files[name])
        (write.parent / f"{prefix}_report.html").write_text(page)
        markdown += "\n" + "\n".join(f"![{name}](figures/{file})" for name, file in files.items())
        markdown += (f"\n\nThe same as one HTML page: [{prefix}_report.html]({prefix}_report.html), written beside "
                     "this file with the figures and logged to the summary MLflow run; the report and the gene maps "
                     "show observed expression, so they stay out of the repository (`.gitignore`).\n")  # fmt: skip
    run_id = log_summary_run(run, results, genes, markdown, figures | {"study_report.html": page})
    logger.info("study: %d of %d jobs summarised in MLflow run %s", *jobs, run_id)
    if write is not None:
        write_block(write, markdown, block)
        logger.info("study: results written to %s", write)
    return results
