"""The study: jobs and their parameters, the results over seeds, and a real run on the synthetic demo."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from thitogene_kedro.study import (
    BLOCK_BEGIN,
    BLOCK_END,
    StudyParams,
    job_parameters,
    params_option,
    study_jobs,
    summarise_study,
    top_genes,
    write_block,
)
from thitogene_kedro.sweep import Job

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


def test_top_genes_rank_by_mean_neg_log10_p():
    genes = pd.DataFrame({"variant": ["v"] * 5, "gene": ["A", "A", "B", "C", "D"],
                          "neg_log10_p": [1.0, 5.0, 2.5, 9.0, 20.0], "pcc": [0.1, 0.3, 0.2, 0.5, -0.6]})  # fmt: skip
    top = top_genes(genes, 2)  # D: significant but negatively correlated
    assert top["gene"].tolist() == ["C", "A"] and top.loc[1, "neg_log10_p"] == 3.0 and top.loc[1, "pairs"] == 2


def test_the_results_block_is_replaced_in_place(tmp_path):
    results = tmp_path / "results.md"
    results.write_text("# Results\n\nintro\n")
    write_block(results, f"{BLOCK_BEGIN}\none\n{BLOCK_END}")
    write_block(results, f"{BLOCK_BEGIN}\ntwo\n{BLOCK_END}")
    assert results.read_text() == f"# Results\n\nintro\n\n{BLOCK_BEGIN}\ntwo\n{BLOCK_END}\n"
