"""The study's record: one JSON file per finished job, kept with the results in the repository.

An MLflow store lives on one machine; a study of a hundred jobs outlives several. Each finished
job is written as ``<record folder>/<experiment>/<run name>.json``: its held-out scores per
section, its per-gene PCC and −log10 p, its training history and where it ran (commit, torch,
CPU, MLflow run id). No expression values are in it. ``kedro study run`` skips jobs that are
recorded as well as those FINISHED in MLflow, and ``kedro study summarise`` computes the results
from the records, so a study resumes and summarises on a machine whose MLflow store never saw
its earlier jobs.
"""

from __future__ import annotations

import json
import os
import platform
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from thitogene_kedro.provenance import cpu_name
from thitogene_kedro.sweep import Job

RECORD_FORMAT = 1
GENE_COLUMNS = ("section", "gene", "pcc", "neg_log10_p")
DIGITS = 6


def machine_origin() -> dict[str, str]:
    """Where a job ran: machine, CPU (and the vector ISA torch dispatches to), torch version."""
    import torch  # noqa: PLC0415 - torch only where jobs run

    return {
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
        "cpu": cpu_name(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "torch": torch.__version__,
        "cuda_device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "",
    }


def _rounded(values: Iterable[Any]) -> list[Any]:
    return [round(float(v), DIGITS) if isinstance(v, float) else v for v in values]


def job_record(
    job: Job,
    held_out: Mapping[str, Mapping[str, float]],
    gene_scores: pd.DataFrame,
    history: pd.DataFrame,
    origin: Mapping[str, str],
) -> dict[str, Any]:
    """One job's record: ``held_out`` is section → score → value (the run's held-out metrics),
    ``gene_scores`` the evaluation's per-gene table (only :data:`GENE_COLUMNS` are kept: no
    expression means), ``history`` the training history (numeric columns)."""
    genes = gene_scores.loc[:, list(GENE_COLUMNS)]
    numeric = history.select_dtypes("number")
    return {
        "format": RECORD_FORMAT,
        "run_name": job.run_name,
        "variant": job.variant,
        "seed": job.seed,
        "fold": job.fold,
        "held_out": {section: dict(scores) for section, scores in held_out.items()},
        "genes": {column: _rounded(genes[column].astype(object).tolist()) for column in GENE_COLUMNS},
        "history": {column: _rounded(numeric[column].tolist()) for column in numeric.columns},
        "origin": dict(origin) | {"recorded": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")},
    }


def record_path(folder: Path, run_name: str) -> Path:
    return folder / f"{run_name}.json"


def write_record(folder: Path, record: Mapping[str, Any]) -> Path:
    """Write one record atomically (a partial file never stands for a finished job)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = record_path(folder, str(record["run_name"]))
    partial = path.with_suffix(".json.partial")
    partial.write_text(json.dumps(record, separators=(",", ":"), allow_nan=True) + "\n")
    partial.replace(path)
    return path


def recorded(folder: Path, run_names: Iterable[str]) -> set[str]:
    """The names among ``run_names`` that have a record file in ``folder`` (read by :func:`read_records`)."""
    return {name for name in run_names if record_path(folder, name).is_file()}


def read_records(folder: Path, run_names: Iterable[str]) -> dict[str, dict[str, Any]]:
    """The records of ``run_names`` found in ``folder``; a file that is not a record of this
    format is a one-line error naming it."""
    records = {}
    for name in run_names:
        path = record_path(folder, name)
        if not path.is_file():
            continue
        try:
            record = json.loads(path.read_text())
        except json.JSONDecodeError as error:
            raise ValueError(f"{path}: not a study record ({error}); delete it to run the job again") from None
        if record.get("format") != RECORD_FORMAT or record.get("run_name") != name:
            raise ValueError(
                f"{path}: a record of format {record.get('format')!r} for {record.get('run_name')!r}, expected "
                f"format {RECORD_FORMAT} for {name!r}; delete it to run the job again"
            )
        records[name] = record
    return records


def section_scores(records: Mapping[str, Mapping[str, Any]]) -> pd.DataFrame:
    """One row per (job, held-out section), as :func:`thitogene_kedro.sweep.section_scores`."""
    rows = [
        {"run_name": name, "variant": r["variant"], "seed": r["seed"], "fold": r["fold"], "section": section,
         "pcc_mean": scores["pcc_mean"]}
        for name, r in records.items()
        for section, scores in r["held_out"].items()
    ]  # fmt: skip
    columns = ["run_name", "variant", "seed", "fold", "section", "pcc_mean"]
    frame = pd.DataFrame(rows, columns=columns)
    return frame.sort_values(["variant", "seed", "fold", "section"], ignore_index=True)


def gene_scores(records: Mapping[str, Mapping[str, Any]]) -> pd.DataFrame:
    """Per job and gene: variant, seed, fold, section, gene, pcc, neg_log10_p."""
    frames = [
        pd.DataFrame(r["genes"]).assign(variant=r["variant"], seed=r["seed"], fold=r["fold"]) for r in records.values()
    ]
    columns = ["variant", "seed", "fold", *GENE_COLUMNS]
    return pd.concat(frames, ignore_index=True)[columns] if frames else pd.DataFrame(columns=columns)


def histories(records: Mapping[str, Mapping[str, Any]]) -> dict[str, list[pd.DataFrame]]:
    """Variant → the training histories of its recorded jobs."""
    found: dict[str, list[pd.DataFrame]] = {}
    for record in records.values():
        if record["history"]:
            found.setdefault(record["variant"], []).append(pd.DataFrame(record["history"]))
    return found


def origins(records: Mapping[str, Mapping[str, Any]]) -> pd.DataFrame:
    """How many jobs ran where: one row per (commit, torch, CPU, ISA, CUDA device)."""
    keys = ["commit", "torch", "cpu", "cpu_capability", "cuda_device"]
    table = pd.DataFrame([{k: r["origin"].get(k, "") for k in keys} for r in records.values()], columns=keys)
    return table.value_counts().rename("jobs").reset_index() if not table.empty else table.assign(jobs=[])
