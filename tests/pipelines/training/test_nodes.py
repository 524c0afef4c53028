"""Training nodes: gene selection never looks at a fold's unseen sections."""

from __future__ import annotations

import pandas as pd
import pytest

from thitogene_kedro import pipeline_registry
from thitogene_kedro.errors import ProjectError
from thitogene_kedro.pipelines.preprocessing.params import PreprocessingParams
from thitogene_kedro.pipelines.training.nodes import select_fold_genes
from thitogene_kedro.training.folds import Fold, FoldPlan

PARAMS = PreprocessingParams(gene_selection={"method": "hvg_cut", "min_spots_expressed": 10})
GENES = ["G1", "G2", "G3", "LEAK"]
FOLDS = (
    Fold(name="fold_A", test=("A",), train=("B",), unseen=("A",)),
    Fold(name="fold_B", test=("B",), train=("A",), unseen=("B",)),
    Fold(name="final", test=(), train=("A", "B")),
)


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


def test_a_fold_whose_training_sections_keep_no_gene_is_named():
    fold = Fold(name="fold_T", test=("T",), train=("A", "B"), unseen=("T",))
    strict = PreprocessingParams(gene_selection={"method": "hvg_cut", "min_spots_expressed": 100})
    with pytest.raises(
        ProjectError, match=r"^fold_T: preprocessing\.gene_selection\.min_spots_expressed=100: .*\['A', 'B'\]"
    ):
        select_fold_genes(STATISTICS, None, fold, strict)
    final = Fold(name="final", test=(), train=("A", "B", "T"))
    assert len(select_fold_genes(STATISTICS, None, final, strict)) == 2  # with T, LEAK and G3 pass


def test_every_fold_selects_its_genes_before_any_section_is_normalised_patched_or_graphed(monkeypatch):
    """A gene rule that fails for a fold fails the run in its first nodes, before the data work."""
    monkeypatch.setattr(
        pipeline_registry,
        "registered_plan",
        lambda: FoldPlan(basis={"source": "synthetic", "sections": ("A", "B")}, folds=FOLDS),
    )
    monkeypatch.setattr(pipeline_registry, "_register_folds", lambda: False)
    order = [node.name for node in pipeline_registry.register_pipelines()["__default__"].nodes]
    first_data_work = min(
        order.index(n) for n in ("normalise_sections_node", "extract_section_patches_node", "build_spot_graphs_node")
    )
    selections = [i for i, name in enumerate(order) if name.endswith("select_fold_genes")]
    assert len(selections) == len(FOLDS) and max(selections) < first_data_work
