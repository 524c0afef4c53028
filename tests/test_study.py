"""The study: jobs and their parameters, the results over seeds, and a real run on the synthetic demo."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient
from PIL import Image
from scipy import stats

from tests.test_cli import kedro, runs_in_store
from thitogene_kedro import study_records
from thitogene_kedro.markdown_blocks import markers, write_block
from thitogene_kedro.study import (
    StudyParams,
    StudyRun,
    compared_records,
    job_parameters,
    output_name,
    params_option,
    study_jobs,
    summarise_study,
    top_genes,
)
from thitogene_kedro.sweep import Job

BLOCK_BEGIN, BLOCK_END = markers("study")

ABLATION = {"training": {"model": {"overrides": {"components": {"gat": False}}}}}


def test_jobs_go_seed_by_seed_and_carry_their_variant_seed_and_names():
    study = StudyParams(seeds=[0, 1], variants={"thitogene": {}, "no_gat": ABLATION}, folds=["B4", "C2"])
    jobs = study_jobs(study, ["fold_B4", "fold_C2", "fold_C3"])
    assert [j.run_name for j in jobs[:4]] == ["fold_B4-thitogene-s0", "fold_C2-thitogene-s0", "fold_B4-no_gat-s0",
                                              "fold_C2-no_gat-s0"]  # fmt: skip
    assert len(jobs) == 8 and Job.from_run_name(jobs[-1].run_name) == jobs[-1]
    base = {"training": {"epochs": 2, "model": {"preset": "small"}}}
    params = job_parameters(jobs[2], study, base)
    assert params["training"] == {
        "epochs": 2,
        "seed": 0,
        "model": {"preset": "small", "overrides": {"components": {"gat": False}}},
    }
    assert params["run_name"] == "fold_B4-no_gat-s0" and params["run_suffix"] == "-no_gat-s0"
    assert params["mlflow_experiment"] == "thitogene_study" and base == {
        "training": {"epochs": 2, "model": {"preset": "small"}}
    }
    assert params_option({"a": {"b": False, "c": ["B4", "C2"]}, "d": 3}) == "a.b=false,a.c=B4 C2,d=3"


def test_bad_study_parameters_are_named():
    with pytest.raises(ValueError, match="study.reference"):
        StudyParams(reference="nope")
    with pytest.raises(ValueError, match="may not contain '-'"):
        StudyParams(reference="a-b", variants={"a-b": {}})
    with pytest.raises(ValueError, match=r"study.run_variants: \['nope'\]"):
        StudyParams(run_variants="thitogene nope")
    assert StudyParams(variants={"thitogene": {}, "b": {}}, run_variants="thitogene").chosen_variants == ["thitogene"]


def scores_table() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    rows = []
    for variant, shift in (("thitogene", 0.1), ("no_gat", 0.0)):
        for seed in ("0", "1", "2"):
            for section in ("B4", "C2", "C3"):
                rows.append({"run_name": f"fold_{section}-{variant}-s{seed}", "variant": variant, "seed": seed,
                             "fold": f"fold_{section}", "section": section, "pcc_mean": shift + rng.normal(0, 0.05)})  # fmt: skip
    return pd.DataFrame(rows)


def test_results_are_over_seeds_and_paired_over_section_and_seed():
    scores = scores_table()
    results = summarise_study(scores.iloc[:-1], "thitogene", ["thitogene", "no_gat"])  # no_gat seed 2 lacks C3
    per_variant = results.per_variant.set_index("variant")
    means = scores[scores["variant"] == "thitogene"].groupby("seed")["pcc_mean"].mean()
    assert per_variant.loc["thitogene", "seeds"] == 3 and per_variant.loc["no_gat", "seeds"] == 2  # complete seeds only
    assert per_variant.loc["thitogene", "pcc_mean"] == pytest.approx(means.mean())
    assert per_variant.loc["thitogene", "pcc_sd"] == pytest.approx(means.std())
    paired = results.paired.iloc[0]
    assert paired["variant"] == "no_gat" and paired["pairs"] == 8  # (section, seed) pairs both have
    a = scores[scores["variant"] == "thitogene"].set_index(["section", "seed"])["pcc_mean"]
    b = scores.iloc[:-1][scores.iloc[:-1]["variant"] == "no_gat"].set_index(["section", "seed"])["pcc_mean"]
    a, b = a.align(b, join="inner")
    assert paired["wilcoxon_p"] == pytest.approx(stats.wilcoxon(a - b).pvalue)
    cell = results.per_section.set_index("section").loc["C2", "thitogene"]
    c2 = scores[(scores["variant"] == "thitogene") & (scores["section"] == "C2")]["pcc_mean"]
    assert cell == f"{c2.mean():.3f} ± {c2.std():.3f} (3)"


def record_of(job: Job, pcc: float) -> dict:
    genes = pd.DataFrame({"section": ["B4"], "gene": ["A"], "pcc": [pcc], "neg_log10_p": [1.0]})
    return study_records.job_record(job, {job.fold.removeprefix("fold_"): {"pcc_mean": pcc}}, genes,
                                    pd.DataFrame({"epoch": [1]}), {})  # fmt: skip


def test_another_studys_records_of_a_variant_are_paired_with_the_reference(tmp_path):
    """``compare_with``: the small study's THItoGene beside the paper configuration's, on the folds
    and seeds both have, without training it again."""
    folds, small = ["fold_B4", "fold_C2", "fold_C3"], tmp_path / "docs" / "study_records" / "small_study"
    for fold, pcc in zip(folds, (0.3, 0.2, 0.1), strict=True):
        for seed in ("0", "1"):  # seed 1 is not in the paper study: left out
            study_records.write_record(small, record_of(Job(fold, "thitogene", seed), pcc))
    study = StudyParams(experiment="paper", seeds=[0], compare_with="small_study/thitogene")
    run = StudyRun(tmp_path, None, {}, study, study_jobs(study, folds))
    compared = compared_records(run)
    assert sorted(compared) == [f"small_study/{f}-thitogene-s0" for f in folds]
    assert {r["variant"] for r in compared.values()} == {"small_study/thitogene"}
    paper = {job.run_name: record_of(job, pcc) for job, pcc in zip(run.jobs, (-0.1, 0.25, 0.15), strict=True)}
    scores = study_records.section_scores(paper | compared)
    results = summarise_study(scores, "thitogene", study.chosen_variants + study.compare_with)
    paired = results.paired.iloc[0]
    assert paired["variant"] == "small_study/thitogene" and paired["pairs"] == 3 and paired["wins"] == 2
    assert paired["mean_difference"] == pytest.approx((-0.4 + 0.05 + 0.05) / 3)
    assert results.per_section.set_index("section").loc["B4", "small_study/thitogene"] == "0.300 (1)"
    with pytest.raises(ValueError, match=r"no records of 'no_gat' .*expected e.g. fold_B4-no_gat-s0.json"):
        compared_records(StudyRun(tmp_path, None, {}, study.model_copy(update={"compare_with": ["small_study/no_gat"]}),
                                  run.jobs))  # fmt: skip
    with pytest.raises(ValueError, match="not <experiment>/<variant>"):
        StudyParams(compare_with="thitogene")


def test_top_genes_rank_by_mean_neg_log10_p():
    genes = pd.DataFrame({"variant": ["v"] * 5, "gene": ["A", "A", "B", "C", "D"],
                          "neg_log10_p": [1.0, 5.0, 2.5, 9.0, 20.0], "pcc": [0.1, 0.3, 0.2, 0.5, -0.6]})  # fmt: skip
    top = top_genes(genes, 2)  # D: significant but negatively correlated
    assert top["gene"].tolist() == ["C", "A"] and top.loc[1, "neg_log10_p"] == 3.0 and top.loc[1, "pairs"] == 2


def test_the_results_block_is_replaced_in_place(tmp_path):
    results = tmp_path / "results.md"
    results.write_text("# Results\n\nintro\n")
    write_block(results, "one", "study")
    write_block(results, "two", "study")
    assert results.read_text() == f"# Results\n\nintro\n\n{BLOCK_BEGIN}\ntwo\n{BLOCK_END}\n"


def test_a_second_experiment_writes_beside_the_default_one(tmp_path):
    """The paper-configuration study gets its own block and files; the default one keeps ``study``."""
    assert output_name(StudyParams().experiment) == "study"
    block = output_name("thitogene_study_paper")
    assert block == "thitogene_study_paper"
    results = tmp_path / "results.md"
    write_block(results, "first", output_name("thitogene_study"))
    write_block(results, "paper", block)
    write_block(results, "first again", "study")
    text = results.read_text()
    assert "first again" in text and "paper" in text and text.count(BLOCK_BEGIN) == 1


def test_the_study_runs_each_job_as_a_run_resumes_and_writes_its_results(project_copy, monkeypatch):
    """Two variants × one fold × two seeds on the synthetic demo: seed 0 in this process, then seed 1
    as two ``kedro run`` processes side by side, the seed-0 jobs skipped as finished; then, on an
    empty MLflow store and data folder (another machine), the records alone resume and summarise."""
    results = project_copy / "results.md"
    results.write_text(f"# Results\n\n{BLOCK_BEGIN}\nNot run yet.\n{BLOCK_END}\n")
    params = "training.epochs=1,training.cv.folds=SYN_A1,study.run_variants=thitogene no_gat,study.seeds=0"
    first = kedro(project_copy, "study", "run", "--params", params, "--write", "results.md")
    assert first.returncode == 0, first.stderr[-3000:]
    assert (
        "study: job 1 of 2: fold_SYN_A1-thitogene-s0" in first.stderr and "jobs finished: 2 of 2" in results.read_text()
    )
    second = kedro(project_copy, "study", "run", "--parallel", "2", "--params", params + " 1", "--write", "results.md")
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    assert "study: 2 of 4 jobs already finished (2 FINISHED in MLflow, 2 recorded); skipping them" in " ".join(
        second.stderr.split()
    )
    assert sorted(p.name for p in (project_copy / "logs" / "study").iterdir()) == [
        "fold_SYN_A1-no_gat-s1.log", "fold_SYN_A1-thitogene-s1.log"]  # fmt: skip

    runs = runs_in_store("thitogene_study")
    jobs = {r.info.run_name: r for r in runs if r.info.run_name != "summary"}
    assert sorted(jobs) == sorted(f"fold_SYN_A1-{v}-s{s}" for v in ("thitogene", "no_gat") for s in (0, 1))
    assert all(
        r.info.status == "FINISHED" and "fold_SYN_A1.test.SYN_A1.pcc_mean" in r.data.metrics for r in jobs.values()
    )
    assert jobs["fold_SYN_A1-no_gat-s1"].data.tags | {"variant": "no_gat", "seed": "1", "fold": "fold_SYN_A1"} == (
        jobs["fold_SYN_A1-no_gat-s1"].data.tags
    )
    ablated = jobs["fold_SYN_A1-no_gat-s1"].data.params
    assert ablated["training.model.overrides.components.gat"] == "False" and ablated["training.seed"] == "1"
    text = results.read_text()
    assert text.startswith("# Results\n\n") and text.count(BLOCK_BEGIN) == 1 and "jobs finished: 4 of 4" in text
    summary = max((r for r in runs if r.info.run_name == "summary"), key=lambda r: r.info.start_time)
    assert summary.data.metrics["thitogene.seeds"] == 2 and "thitogene.pcc_sd_over_seeds" in summary.data.metrics
    assert "| thitogene | no_gat | 2 |" in text  # paired over (SYN_A1, 0) and (SYN_A1, 1)
    # the figures beside the results file, linked from its block and kept in the summary run
    for name in ("study_training_curves", "study_top_gene_maps"):
        assert f"![{name}](figures/{name}.png)" in text
        with Image.open(project_copy / "figures" / f"{name}.png") as figure:
            assert figure.width > 600 and np.asarray(figure.convert("L")).std() > 10  # drawn, not blank
    artifacts = {f.path for f in MlflowClient().list_artifacts(summary.info.run_id, "study")}
    assert {"study/study_training_curves.png", "study/study_top_gene_maps.png", "study/study_report.html"} <= artifacts
    page = (project_copy / "study_report.html").read_text()
    assert "thitogene-kedro study: 4 of 4 jobs" in page and page.count("<img") == 2 and "no_gat" in page

    # every job is recorded: scores, per-gene PCC and history, where it ran; no expression values
    folder = project_copy / "docs" / "study_records" / "thitogene_study"
    assert sorted(p.stem for p in folder.glob("*.json")) == sorted(jobs)
    record = json.loads((folder / "fold_SYN_A1-no_gat-s1.json").read_text())
    assert record["held_out"]["SYN_A1"]["pcc_mean"] == pytest.approx(
        jobs["fold_SYN_A1-no_gat-s1"].data.metrics["fold_SYN_A1.test.SYN_A1.pcc_mean"]
    )
    assert set(record["genes"]) == {"section", "gene", "pcc", "neg_log10_p"} and len(record["history"]["epoch"]) == 1
    assert record["origin"]["mlflow_run_id"] == jobs["fold_SYN_A1-no_gat-s1"].info.run_id
    assert record["origin"]["torch"] and record["origin"]["cpu_capability"]
    assert "| thitogene | no_gat | 2 |" in text and "Where the jobs ran" in text

    # another machine: no MLflow store, no data folder; the records skip every job and summarise
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{project_copy / 'elsewhere.db'}")
    for folder in ("07_model_output", "08_reporting"):
        shutil.rmtree(project_copy / "data" / folder)
    third = kedro(project_copy, "study", "run", "--params", params + " 1", "--write", "results.md")
    assert third.returncode == 0, third.stderr[-3000:]
    assert "4 of 4 jobs already finished (0 FINISHED in MLflow, 4 recorded)" in " ".join(third.stderr.split())
    assert "study: no Figure 4 maps" in " ".join(third.stderr.split())
    again = results.read_text()
    assert "jobs finished: 4 of 4" in again and "| thitogene | no_gat | 2 |" in again
    assert again.split("Paired over")[1].split("Top genes")[0] == text.split("Paired over")[1].split("Top genes")[0]
    assert "![study_training_curves]" in again and "![study_top_gene_maps]" not in again
    assert [r.info.run_name for r in runs_in_store("thitogene_study")] == ["summary"]


def test_models_on_frozen_features_join_the_study_paired_with_thitogene_from_pixels(project_copy, tmp_path):
    """THItoGene from pixels, its spatial head and the linear probe on a (small, local) encoder's
    features: the features are computed once before the jobs, each feature model trains through
    feature_training's fold namespace, and all three are paired over (section, seed)."""
    from tests.encoders.test_frozen import small_weights  # noqa: PLC0415
    from tests.pipelines.features.test_pipeline import use_encoder  # noqa: PLC0415

    _, weights = small_weights(tmp_path, "uni")
    use_encoder(project_copy, weights)
    results = project_copy / "results.md"
    results.write_text(f"# Results\n\n{BLOCK_BEGIN}\nNot run yet.\n{BLOCK_END}\n")
    params = ("training.epochs=1,training.model.preset=small,training.cv.folds=SYN_A1,study.seeds=0,"
              "study.run_variants=thitogene thitogene_head linear_probe")  # fmt: skip
    done = kedro(project_copy, "study", "run", "--params", params, "--write", "results.md")
    assert done.returncode == 0, done.stderr[-3000:]
    log = " ".join(done.stderr.split())
    assert "Features (uni-" in log and "study: job 3 of 3: fold_SYN_A1-linear_probe-s0" in log
    runs = {r.info.run_name: r for r in runs_in_store("thitogene_study") if r.info.run_name != "summary"}
    assert {name: r.data.params["training.model.name"] for name, r in runs.items()} == {
        "fold_SYN_A1-thitogene-s0": "thitogene", "fold_SYN_A1-thitogene_head-s0": "thitogene_head",
        "fold_SYN_A1-linear_probe-s0": "linear_probe"}  # fmt: skip
    assert all(
        r.info.status == "FINISHED" and "fold_SYN_A1.test.SYN_A1.pcc_mean" in r.data.metrics for r in runs.values()
    )
    text = results.read_text()
    assert "jobs finished: 3 of 3" in text
    assert "| thitogene | thitogene_head | 1 |" in text and "| thitogene | linear_probe | 1 |" in text
