"""Preprocessing nodes: normalisation formulas, zero libraries, gene selection without leakage."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
import pytest
from scipy import sparse

from tests.conftest import HER2ST_REAL
from thitogene_kedro.datasets import SpatialSectionsDataset
from thitogene_kedro.errors import ProjectError
from thitogene_kedro.pipelines.preprocessing.nodes import gene_statistics, normalise_sections, select_genes
from thitogene_kedro.pipelines.preprocessing.params import NormalisationParams, PreprocessingParams
from thitogene_kedro.processing.genes import GeneList
from thitogene_kedro.processing.normalisation import normalise_counts, normalise_section
from thitogene_kedro.sections.choice import choose_sections
from thitogene_kedro.sections.her2st import PAPER_SECTIONS
from thitogene_kedro.sections.schema import SectionDataError, build_section


def make_section(name: str, counts: np.ndarray, genes: list[str]) -> ad.AnnData:
    n = counts.shape[0]
    ids = [f"{i + 1}x1" for i in range(n)]
    spots = pd.DataFrame(
        {"array_x": np.arange(1, n + 1), "array_y": 1, "pixel_x": 10.0 * np.arange(1, n + 1), "pixel_y": 10.0},
        index=ids,
    )
    return build_section(
        pd.DataFrame(counts, index=ids, columns=genes), spots, section=name, patient=name[0], source="test", image=None
    )


def test_reference_normalisation_matches_formula():
    counts = np.array([[1, 3, 0], [0, 0, 0], [2, 2, 4]])
    out = normalise_counts(counts, counts.sum(axis=1), NormalisationParams())
    expected = np.log10(1 + 1e4 * np.array([[0.25, 0.75, 0], [0, 0, 0], [0.25, 0.25, 0.5]]))
    np.testing.assert_allclose(out, expected, rtol=1e-6)
    assert out.dtype == np.float32 and not np.isnan(out).any()


def test_paper_normalisation_is_cpm_then_natural_log():
    counts = np.array([[1, 3], [5, 5]])
    library = np.array([8, 20])  # total counts over all genes
    out = normalise_counts(counts, library, NormalisationParams(method="paper_cpm_ln"))
    np.testing.assert_allclose(out, np.log1p(1e6 * counts / library[:, None]), rtol=1e-6)


def test_zero_library_spot_keeps_zero_targets_or_is_dropped():
    section = make_section("A1", np.array([[0, 0, 7], [1, 2, 3], [4, 0, 1]]), ["G1", "G2", "G3"])
    kept = normalise_section(section, ["G1", "G2"], NormalisationParams())
    assert kept.n_obs == 3 and not np.isnan(kept.X).any()
    np.testing.assert_array_equal(kept.X[0], [0, 0])
    assert kept.obs["zero_library"].tolist() == [True, False, False]
    assert kept.layers["counts"].toarray().tolist() == [[0, 0], [1, 2], [4, 0]]
    dropped = normalise_section(section, ["G1", "G2"], NormalisationParams(zero_library="drop"))
    assert dropped.obs_names.tolist() == ["2x1", "3x1"]


def test_missing_selected_gene_is_an_error():
    section = make_section("A1", np.ones((3, 2), dtype=int), ["G1", "G2"])
    with pytest.raises(SectionDataError, match="section A1: 1 of 2 selected genes are absent"):
        normalise_section(section, ["G1", "ERBB2"], NormalisationParams())


def test_choose_sections_refuses_unknown_names():
    loaders = {"A1": lambda: None, "A2": lambda: None}
    assert list(choose_sections(loaders, ["A2"])) == ["A2"]
    with pytest.raises(ValueError, match=r"section\(s\) \['Z9'\]"):
        choose_sections(loaders, ["A1", "Z9"])


def _hvg_sections():
    rng = np.random.default_rng(0)
    genes = [f"G{i}" for i in range(30)]
    sections = {}
    for name in ("A1", "A2", "B1"):
        counts = rng.poisson(20, size=(60, 30))
        if name == "B1":  # only in the held-out section is G0 wildly variable
            counts[:, 0] = np.where(np.arange(60) % 2 == 0, 0, 400)
        else:
            counts[:, 0] = 20
        sections[name] = make_section(name, counts, genes)
    return {name: (lambda a=a: a) for name, a in sections.items()}


def _with_statistics(gene_list, params):
    sections = _hvg_sections()
    return sections, gene_statistics(sections, gene_list, params)


def test_hvg_cut_uses_training_sections_only():
    params = PreprocessingParams(gene_selection={"method": "hvg_cut", "n_top_hvg": 5, "min_spots_expressed": 10})
    with_test = select_genes(*_with_statistics(None, params), None, params)
    assert "G0" in set(with_test["gene"])
    held_out = params.model_copy(update={"gene_selection_excludes": ["B1"]})
    without_test = select_genes(*_with_statistics(None, held_out), None, held_out)
    assert "G0" not in set(without_test["gene"])
    assert (without_test["n_spots_expressed"] > 10).all() and set(without_test["method"]) == {"hvg_cut"}


def test_file_method_keeps_file_order_and_auto_prefers_the_file():
    genes = ["G3", "G1"]
    table = select_genes(*_with_statistics(genes, PreprocessingParams()), genes, PreprocessingParams())
    assert table["gene"].tolist() == genes and set(table["method"]) == {"file"}
    with pytest.raises(ValueError, match="no gene list file is configured"):
        gene_statistics(_hvg_sections(), None, PreprocessingParams(gene_selection={"method": "file"}))


def test_min_spots_rule_can_reject_everything():
    params = PreprocessingParams(gene_selection={"method": "hvg_cut", "n_top_hvg": 5, "min_spots_expressed": 10_000})
    with pytest.raises(ValueError, match="kept no gene"):
        select_genes(*_with_statistics(None, params), None, params)


def test_targets_are_sparse_counts_in_layers():
    section = make_section("A1", np.array([[1, 2], [3, 4]]), ["G1", "G2"])
    out = normalise_section(section, ["G2"], NormalisationParams())
    assert sparse.issparse(out.layers["counts"]) and out.var_names.tolist() == ["G2"]
    assert out.uns["normalisation"]["method"] == "reference"


@pytest.mark.skipif(not HER2ST_REAL.is_dir(), reason="real her2st copy (../shared/data/her2st) not present")
def test_paper_sections_are_the_reference_list_minus_absent_ones(caplog):
    sections = SpatialSectionsDataset("her2st", str(HER2ST_REAL)).load()
    with caplog.at_level("WARNING"):
        chosen = choose_sections(sections, "paper")
    expected = [s for s in PAPER_SECTIONS if (HER2ST_REAL / "data" / "ST-cnts" / f"{s}.tsv.gz").exists()]
    assert list(chosen) == expected and expected[0] == "A2" and "A1" not in chosen
    absent = [s for s in PAPER_SECTIONS if s not in expected]
    assert (f"skipped: {absent}" in caplog.text) if absent else "skipped" not in caplog.text


def test_paper_sections_need_a_published_list(tmp_path):
    synthetic = SpatialSectionsDataset("synthetic", str(tmp_path), {"n_patients": 1, "sections_per_patient": 2}).load()
    with pytest.raises(ValueError, match="needs a her2st or cSCC source"):
        choose_sections(synthetic, "paper")


def test_genes_absent_from_a_held_out_section_can_count_as_zero(caplog):
    section = make_section("T1", np.array([[1, 2], [3, 4]]), ["G1", "G2"])
    with pytest.raises(SectionDataError, match="1 of 3 selected genes are absent"):
        normalise_section(section, ["G2", "GX", "G1"], NormalisationParams())
    with caplog.at_level("WARNING"):
        out = normalise_section(section, ["G2", "GX", "G1"], NormalisationParams(), missing_genes="zero")
    assert out.layers["counts"].toarray().tolist() == [[2, 0, 1], [4, 0, 3]]
    assert "count as 0: ['GX']" in caplog.text


def test_a_rule_that_keeps_no_gene_names_the_setting_the_sections_and_the_threshold_that_would_work():
    params = PreprocessingParams(gene_selection={"method": "hvg_cut", "n_top_hvg": 5, "min_spots_expressed": 10_000})
    sections, statistics = _with_statistics(None, params)
    with pytest.raises(ProjectError) as error:
        select_genes(sections, statistics, None, params)
    message = str(error.value)
    assert message.startswith("preprocessing.gene_selection.min_spots_expressed=10000: the hvg_cut rule kept no gene")
    assert f"{sorted(statistics)}" in message and "HER2ST_GENE_LIST" in message
    n_spots = sum(s["n_spots"] for s in statistics.values())
    assert f"({n_spots} spots;" in message and "below " in message
    suggested = int(message.rsplit("below ", 1)[1])
    below = params.model_copy(
        update={"gene_selection": params.gene_selection.model_copy(update={"min_spots_expressed": suggested - 1})}
    )
    assert len(select_genes(sections, statistics, None, below)) >= 1  # the suggestion keeps a gene
    at = params.model_copy(
        update={"gene_selection": params.gene_selection.model_copy(update={"min_spots_expressed": suggested})}
    )
    with pytest.raises(ProjectError):
        select_genes(sections, statistics, None, at)


def test_a_gene_list_gene_a_section_lacks_is_an_error_naming_the_gene_list_file(tmp_path):
    section = make_section("A1", np.array([[1, 2], [3, 4]]), ["G1", "G2"])
    genes = GeneList(["G2", "G9"], source=str(tmp_path / "my_genes.txt"))
    table = select_genes({"A1": lambda: section}, {}, genes, PreprocessingParams())
    loaders = normalise_sections({"A1": lambda: section}, {}, {}, table, genes, {}, PreprocessingParams())
    with pytest.raises(SectionDataError) as error:
        loaders["A1"]()
    assert str(error.value).startswith(f"{tmp_path / 'my_genes.txt'}: 1 of the 2 genes of this gene list are absent")
    assert "section A1: ['G9']" in str(error.value) and "method=hvg_cut" in str(error.value)
