"""The one planner: folds from the section listing and the parameters; the plan file; the run-start check."""

from __future__ import annotations

import pytest
import yaml

from thitogene_kedro.sections import SectionSource
from thitogene_kedro.training.folds import FoldPlan
from thitogene_kedro.training.planning import check_plan, plan_from_data, plan_yaml
from thitogene_kedro.training.settings import CrossValidationParams


class Listing(dict):
    """Section loaders as the raw_sections dataset gives them: a mapping with its ``source``."""

    def __init__(self, names, source):
        super().__init__({name: (lambda: pytest.fail("the planner must not read counts")) for name in names})
        self.source = source


@pytest.fixture
def her2st_listing(tmp_path):
    source = SectionSource("her2st", tmp_path)
    return Listing(["B1", "B2", "C1", "D1"], source), {"B1": None, "B2": None, "C1": None}


def test_the_plan_reads_only_the_listings_and_keeps_sections_without_images_out(her2st_listing):
    sections, images = her2st_listing
    plan = plan_from_data(sections, images, "all", CrossValidationParams(), seed=0)
    assert plan.names == ["fold_B1", "fold_B2", "fold_C1", "final"]
    assert plan.basis.counts_only == ("D1",) and plan.basis.patients["B2"] == "B"
    by_patient = plan_from_data(sections, images, "all", CrossValidationParams(scheme="leave_one_patient_out"), 0)
    assert by_patient.names == ["fold_B", "fold_C", "final"]
    assert set(by_patient.fold("fold_B").unseen) == {"B1", "B2"}


def test_the_plan_file_round_trips(her2st_listing):
    plan = plan_from_data(*her2st_listing, "all", CrossValidationParams(), seed=3)
    text = plan_yaml(plan, "kedro folds plan --env her2st")
    assert text.startswith("# The cross-validation folds") and "kedro folds plan --env her2st" in text
    assert FoldPlan.model_validate(yaml.safe_load(text)["folds"]) == plan


def test_a_plan_that_does_not_fit_is_refused_with_the_reason_and_the_fix(her2st_listing):
    sections, images = her2st_listing
    plan = plan_from_data(sections, images, "all", CrossValidationParams(), seed=0)
    assert check_plan(plan.model_dump(mode="json"), plan, "conf/x.yml", "kedro folds plan") == plan
    fewer_images = plan_from_data(sections, {"B1": None, "B2": None}, "all", CrossValidationParams(), seed=0)
    with pytest.raises(ValueError, match=r"conf/x.yml.*section C1 trains or is tested in the plan but has no image"):
        check_plan(plan, fewer_images, "conf/x.yml", "kedro folds plan")
    # the seed matters only where it draws validation sections
    assert check_plan(plan, plan_from_data(sections, images, "all", CrossValidationParams(), seed=1), "x", "y") == plan
    validated = CrossValidationParams(validation_sections=1)
    seeded = plan_from_data(sections, images, "all", validated, seed=0)
    other_seed = plan_from_data(sections, images, "all", validated, seed=1)
    with pytest.raises(ValueError, match=r"training.seed differ.*Run `kedro folds plan`"):
        check_plan(seeded, other_seed, "conf/x.yml", "kedro folds plan")
    with pytest.raises(ValueError, match="no fold plan in conf/x.yml; run `kedro folds plan`"):
        check_plan(None, plan, "conf/x.yml", "kedro folds plan")


def test_a_fold_that_leaks_is_refused():
    from thitogene_kedro.training.folds import Fold  # noqa: PLC0415

    with pytest.raises(ValueError, match=r"fold_A: unseen sections \['A'\] also train"):
        Fold(name="fold_A", test=("A",), train=("A", "B"), unseen=("A",)).check_no_leakage()
