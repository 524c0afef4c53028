"""Fold construction: schemes, validation sections, filters, and that no test data is on the training side."""

from __future__ import annotations

import pytest

from thitogene_kedro.pipelines.training.params import CrossValidationParams
from thitogene_kedro.sections.her2st import PAPER_SECTIONS
from thitogene_kedro.training.folds import FINAL, Fold, namespace, plan_folds

PATIENTS = {s: s[0] for s in PAPER_SECTIONS}


def cv(**kwargs) -> CrossValidationParams:
    return CrossValidationParams(**kwargs)


def assert_no_leakage(folds: list[Fold], patients: dict[str, str], by_patient: bool) -> None:
    for fold in folds:
        fitting = set(fold.train) | set(fold.validation)
        assert not set(fold.test) & fitting, fold
        if by_patient:
            assert not {patients[s] for s in fold.test} & {patients[s] for s in fitting}, fold


def test_leave_one_section_out_is_the_papers_32_folds_in_order():
    folds = plan_folds(PAPER_SECTIONS, PATIENTS, cv(final_model=False), seed=0)
    assert [f.name for f in folds] == [f"fold_{s}" for s in PAPER_SECTIONS]
    assert folds[5].test == ("B1",) and len(folds[5].train) == 31  # fold 5 holds out B1
    assert "B2" in folds[5].train  # the reference keeps the test patient's other sections in training
    assert_no_leakage(folds, PATIENTS, by_patient=False)


def test_leave_one_patient_out_keeps_each_patient_out_of_its_training():
    folds = plan_folds(PAPER_SECTIONS, PATIENTS, cv(scheme="leave_one_patient_out"), seed=0)
    assert [f.name for f in folds] == ["fold_A", "fold_B", "fold_C", "fold_D", "fold_E", "fold_F", "fold_G", FINAL]
    fold_b = folds[1]
    assert fold_b.test == ("B1", "B2", "B3", "B4", "B5", "B6") and not any(s.startswith("B") for s in fold_b.train)
    assert folds[-1].test == () and len(folds[-1].train) == 32
    assert_no_leakage(folds[:-1], PATIENTS, by_patient=True)


@pytest.mark.parametrize("scheme", ["leave_one_section_out", "leave_one_patient_out"])
def test_validation_sections_come_from_training_sections_only(scheme):
    folds = plan_folds(PAPER_SECTIONS, PATIENTS, cv(scheme=scheme, validation_sections=2), seed=3)
    for fold in folds:
        assert len(fold.validation) == 2 and not set(fold.validation) & set(fold.train)
    assert_no_leakage(folds, PATIENTS, by_patient=scheme == "leave_one_patient_out")
    again = plan_folds(PAPER_SECTIONS, PATIENTS, cv(scheme=scheme, validation_sections=2), seed=3)
    assert again == folds  # the choice is seeded


def test_held_out_and_fold_filters():
    folds = plan_folds(PAPER_SECTIONS, PATIENTS, cv(scheme="held_out", held_out_sections="B1 C1"), seed=0)
    assert [(f.name, f.test) for f in folds] == [("fold_held_out", ("B1", "C1")), (FINAL, ())]
    subset = plan_folds(PAPER_SECTIONS, PATIENTS, cv(folds=["B4", "C2"], final_model=False), seed=0)
    assert [f.name for f in subset] == ["fold_B4", "fold_C2"]


def test_bad_configurations_are_named():
    with pytest.raises(ValueError, match="not among the fold ids"):
        plan_folds(["B4", "C2"], PATIENTS, cv(folds=["Z9"]), seed=0)
    with pytest.raises(ValueError, match="held_out_sections must name sections"):
        plan_folds(["B4", "C2"], PATIENTS, cv(scheme="held_out", held_out_sections=["A1"]), seed=0)
    with pytest.raises(ValueError, match="at least 2 patients"):
        plan_folds(["C2", "C3"], PATIENTS, cv(scheme="leave_one_patient_out"), seed=0)
    with pytest.raises(ValueError, match="at least 2 sections"):
        plan_folds(["C2"], PATIENTS, cv(), seed=0)
    with pytest.raises(ValueError, match="leaves no training section"):
        plan_folds(["B4", "C2"], PATIENTS, cv(validation_sections=1), seed=0)


def test_namespaces_are_identifiers():
    assert namespace("P2_ST_rep1") == "fold_P2_ST_rep1" and namespace("slide-1.a") == "fold_slide_1_a"
    fold = Fold(name="fold_B4", test=("B4",), train=("C2",))
    assert Fold.model_validate(fold.model_dump(mode="json")) == fold


def test_leave_one_patient_out_hides_the_patients_sections_without_images_too():
    folds = plan_folds(
        ["B4", "C2", "C3"], PATIENTS, cv(scheme="leave_one_patient_out"), seed=0, counts_only=["B1", "C1"]
    )
    fold_b = folds[0]
    assert fold_b.test == ("B4",) and set(fold_b.unseen) == {"B4", "B1"}
    loso = plan_folds(["B4", "C2", "C3"], PATIENTS, cv(), seed=0, counts_only=["B1"])
    assert loso[0].unseen == ("B4",)  # leave-one-section-out hides the test section only
