"""Training nodes: gene selection never looks at a fold's unseen sections."""

from __future__ import annotations

import pandas as pd

from thitogene_kedro.pipelines.preprocessing.params import PreprocessingParams
from thitogene_kedro.pipelines.training.nodes import select_fold_genes
from thitogene_kedro.training.folds import Fold

PARAMS = PreprocessingParams(gene_selection={"method": "hvg_cut", "min_spots_expressed": 10})
GENES = ["G1", "G2", "G3", "LEAK"]


def stats(hvgs: list[str], expressed: dict[str, int]) -> dict:
    return {"hvgs": hvgs, "expressed": pd.Series({g: expressed.get(g, 0) for g in GENES}), "genes": GENES}


STATISTICS = {
    "A": stats(["G1"], {"G1": 50, "G2": 50}),
    "B": stats(["G2"], {"G1": 50, "G2": 50}),
    "T": stats(["LEAK", "G3"], {"LEAK": 500, "G3": 500}),  # the test section: its own HVGs, expressed only there
}


def test_fold_genes_ignore_the_test_section():
    fold = Fold(name="fold_T", test=("T",), train=("A", "B"), unseen=("T",))
    genes = select_fold_genes(STATISTICS, None, fold, PARAMS)
    assert genes["gene"].tolist() == ["G1", "G2"]
    final = Fold(name="final", test=(), train=("A", "B", "T"))
    assert "LEAK" in select_fold_genes(STATISTICS, None, final, PARAMS)["gene"].tolist()  # it would leak


def test_a_gene_list_file_is_used_as_is():
    fold = Fold(name="fold_T", test=("T",), train=("A",), unseen=("T",))
    genes = select_fold_genes({}, ["G2", "G1"], fold, PreprocessingParams(gene_selection={"method": "auto"}))
    assert genes["gene"].tolist() == ["G2", "G1"]
