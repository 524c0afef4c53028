"""User-fixable errors through the real ``kedro`` command: one line, before any work, outputs intact."""

from __future__ import annotations

import shutil

import pandas as pd
import pytest
import torch

from tests.conftest import GENE_LIST_785, HER2ST_REAL
from tests.test_cli import kedro, plan


def test_bad_settings_are_refused_in_one_line_before_any_node(project_copy):
    cases = [
        (("--params", "training.model.preset=foo"), "Error: parameters: training.model.preset: model 'thitogene' has no "
                                                     "preset 'foo'; choose one of ['paper_cscc', 'paper_her2st',"),
        (("--env", "her2sT"), "Error: --env her2sT: there is no environment 'her2sT'"),
    ]  # fmt: skip
    if not torch.cuda.is_available():
        cases.append((("--params", "training.device=cuda"), "Error: training.device=cuda: device 'cuda' was requested "
                                                            "but CUDA is not available on this machine"))  # fmt: skip
    plan(project_copy)
    for args, expected in cases:
        out = kedro(project_copy, "run", *args)
        lines = out.stderr.strip().splitlines()
        assert out.returncode == 1 and lines[-2].startswith(expected), out.stderr[-3000:]
        assert "Traceback" not in out.stderr and len(lines) < 12, out.stderr
    assert not (project_copy / "data" / "03_primary").exists()  # no node ran
    assert "Traceback" in (project_copy / "info.log").read_text()  # the log file has the detail


@pytest.mark.skipif(not HER2ST_REAL.is_dir(), reason="real her2st copy (../shared/data/her2st) not present")
def test_a_broken_section_or_gene_rule_leaves_the_last_good_outputs_and_names_the_fix(
    project_copy, tmp_path, monkeypatch
):
    her2st = tmp_path / "her2st" / "data"
    for section in ("B4", "C3"):
        for folder, name in (("ST-cnts", f"{section}.tsv.gz"), ("ST-spotfiles", f"{section}_selection.tsv")):
            (her2st / folder).mkdir(parents=True, exist_ok=True)
            shutil.copy(HER2ST_REAL / "data" / folder / name, her2st / folder / name)
    monkeypatch.setenv("HER2ST_DIR", str(her2st.parent))
    monkeypatch.setenv("HER2ST_GENE_LIST", str(GENE_LIST_785))
    args = ("run", "--env", "her2st", "--pipelines", "preprocessing", "--params", "preprocessing.sections=B4 C3")
    assert kedro(project_copy, *args).returncode == 0
    outputs = project_copy / "data" / "03_primary"
    good = {p: p.read_bytes() for p in sorted(outputs.rglob("*")) if p.is_file()}
    assert {p.name for p in good} >= {"B4.h5ad", "C3.h5ad", "selected_genes.csv"}

    counts = pd.read_csv(her2st / "ST-cnts" / "C3.tsv.gz", sep="\t", index_col=0)
    counts.iloc[5, 3] = -2  # a negative count in one spot
    counts.to_csv(her2st / "ST-cnts" / "C3.tsv.gz", sep="\t")
    out = kedro(project_copy, *args)
    assert out.returncode == 1 and "Traceback" not in out.stderr
    error = out.stderr.strip().splitlines()[-2]
    assert error.startswith(f"Error: {her2st / 'ST-cnts' / 'C3.tsv.gz'}: section C3: ") and "negative" in error, error
    assert {p: p.read_bytes() for p in sorted(outputs.rglob("*")) if p.is_file()} == good
    assert not any(p.name.startswith(".") for p in outputs.rglob("*"))  # no staging folder or partial file left

    # the documented few-section run without a gene list: the reference rule cannot keep a gene
    monkeypatch.delenv("HER2ST_GENE_LIST")
    out = kedro(project_copy, *args[:-1], "preprocessing.sections=B4")
    error = out.stderr.strip().splitlines()[-2]
    assert out.returncode == 1 and "Traceback" not in out.stderr, out.stderr[-3000:]
    assert error.startswith("Error: preprocessing.gene_selection.min_spots_expressed=1000: the hvg_cut rule kept no "
                            "gene on training sections ['B4'] ("), error  # fmt: skip
    assert "set HER2ST_GENE_LIST" in error and "min_spots_expressed below" in error
    kept = {p: p.read_bytes() for p in sorted(outputs.rglob("*")) if p.is_file() and p.name != "gene_statistics.pkl"}
    assert kept == {p: b for p, b in good.items() if p.name != "gene_statistics.pkl"}  # the statistics node succeeded
