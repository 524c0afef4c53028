"""Checks of a sweep that ran on SLURM (tests/deploy/slurm_fanout.sh): prints PASS/FAIL lines,
``N passed, M failed``, and exits 1 on any failure.

    python check_fanout.py --project DIR --experiment NAME --array ID --folds 4 --gpus 2
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import mlflow
import pandas as pd

LINE = re.compile(r"index (\d+): (\S+) on CUDA_VISIBLE_DEVICES=(\S+), host \S+, start ([\d.]+)")
END = re.compile(r"index (\d+): \S+ end ([\d.]+) exit (\d+)")


def task_intervals(logs: Path, array: str) -> list[dict]:
    tasks = []
    for log in sorted(logs.glob(f"cv_{array}_*.out")):
        text = log.read_text()
        start, end = LINE.search(text), END.search(text)
        if start and end:
            tasks.append(
                {"index": int(start[1]), "run": start[2], "gpu": start[3], "start": float(start[4]),
                 "end": float(end[2]), "exit": int(end[3])}
            )  # fmt: skip
    return tasks


def peak_concurrency(tasks: list[dict]) -> int:
    events = sorted([(t["start"], 1) for t in tasks] + [(t["end"], -1) for t in tasks], key=lambda e: (e[0], e[1]))
    level = peak = 0
    for _, step in events:
        level += step
        peak = max(peak, level)
    return peak


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--project", type=Path, required=True)
    parser.add_argument("--experiment", required=True)
    parser.add_argument("--array", required=True)
    parser.add_argument("--folds", type=int, required=True)
    parser.add_argument("--gpus", type=int, required=True)
    args = parser.parse_args(argv)
    results: list[tuple[bool, str]] = []

    def check(ok: bool, message: str) -> None:
        results.append((bool(ok), message))

    experiment = mlflow.get_experiment_by_name(args.experiment)
    runs = mlflow.search_runs([experiment.experiment_id], output_format="list") if experiment else []
    finished = [r for r in runs if r.info.status == "FINISHED"]
    check(len(runs) == args.folds, f"{len(runs)} runs for {args.folds} folds")
    check(len(finished) == args.folds, f"{len(finished)} of {len(runs)} runs FINISHED")
    names = {r.info.run_name for r in finished}
    check(len(names) == len(finished), "one run per fold")
    scored = [r for r in finished if any(k.endswith(".pcc_mean") and ".test." in k for k in r.data.metrics)]
    check(len(scored) == args.folds, f"{len(scored)} runs logged held-out PCC")
    run_ids = {r.info.run_id for r in finished}
    client = mlflow.MlflowClient()
    versions = [v for v in client.search_model_versions("name='synthetic_thitogene_folds'") if v.run_id in run_ids]
    ready = [v for v in versions if v.status == "READY"]
    check(len(ready) == args.folds, f"{len(ready)} READY model versions from these runs")

    tasks = task_intervals(args.project / "logs" / "slurm", args.array)
    check(len(tasks) == args.folds, f"{len(tasks)} array tasks logged start and end")
    check(all(t["exit"] == 0 for t in tasks), "every array task exited 0")
    peak = peak_concurrency(tasks)
    check(peak == args.gpus, f"peak concurrency {peak} == {args.gpus} (gres gpu count)")
    overlapping = [
        (a, b) for i, a in enumerate(tasks) for b in tasks[i + 1 :] if a["start"] < b["end"] and b["start"] < a["end"]
    ]
    check(
        overlapping and all(a["gpu"] != b["gpu"] for a, b in overlapping),
        f"{len(overlapping)} overlapping task pairs, each on different CUDA_VISIBLE_DEVICES",
    )
    summary = args.project / "data" / "08_reporting" / "sweeps" / args.experiment / "summary.csv"
    table = pd.read_csv(summary) if summary.exists() else pd.DataFrame()
    check(
        not table.empty and int(table["runs"].sum()) == args.folds,
        f"the summary job wrote {summary.name} for every run",
    )

    for ok, message in results:
        print(f"{'PASS' if ok else 'FAIL'} {message}")  # noqa: T201
    failed = sum(not ok for ok, _ in results)
    print(f"{len(results) - failed} passed, {failed} failed")  # noqa: T201
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
